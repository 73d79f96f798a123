"""Stripe events → Prizeflow events, pure functions (https://docs.stripe.com/api/events/types).

Payouts (`ProviderEventReceived`), by the event's object: a transfer to a player's connected account or a
payout from it to their bank. The status says what Stripe says happened to that object; whether it settles
a Prizeflow payout (a transfer-only rail is paid when its transfer exists) is the payouts service's decision,
so `transfer.created` is published without a status (informational).

| Stripe event | status | error_code |
|---|---|---|
| transfer.created | none | |
| transfer.reversed, in full, metadata prizeflow_mode=transfer | returned | |
| transfer.reversed, partly or in mode transfer_and_payout | none | |
| payout.created, payout.updated | none | |
| payout.paid | paid | |
| payout.failed | failed | from `failure_code` (`STRIPE_FAILURE_CODES`, else tx_failed) |
| payout.canceled | cancelled | |

Top-ups (`PaymentEventReceived`):

| Stripe event | status |
|---|---|
| checkout.session.completed, payment_status=paid | paid (amount_total) |
| checkout.session.completed, unpaid / no_payment_required | ignored (the async outcome follows) |
| checkout.session.async_payment_succeeded | paid |
| checkout.session.async_payment_failed | failed |
| checkout.session.expired | expired |
| refund.created, refund.updated (succeeded or pending) | refunded (adjustment_ref = re_…, so once per refund) |
| refund.failed, refund.updated (failed or canceled) | refund_failed (the same re_…: gives back what it took) |
| charge.dispute.funds_withdrawn | disputed (adjustment_ref = dp_…) |
| charge.dispute.funds_reinstated | dispute_won |

Every other type is stored and ignored, and so is a top-up or transfer event of a connected account (`account`
set): Prizeflow's checkouts, refunds, disputes and transfers all happen on the platform's own account, and a
connected account (a player's, with API access of its own) can make Stripe emit genuine ones whose metadata
names any top-up or payout of ours. Only `payout.*` events come from connected accounts.

Refunds and disputes name only the payment intent: the top-up id and the correlation id come from the payment
intent's metadata, fetched by the caller (`payment_intent_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import PaymentEventReceived, PaymentEventStatus, ProviderEventReceived
from prizeflow_contracts.ids import is_identifier
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized, NormalizedEvent

PAYOUT_KINDS: Final[Mapping[str, ProviderPayoutStatus | None]] = {
    "transfer.created": None,
    "transfer.reversed": ProviderPayoutStatus.RETURNED,
    "payout.created": None,
    "payout.updated": None,
    "payout.paid": ProviderPayoutStatus.PAID,
    "payout.failed": ProviderPayoutStatus.FAILED,
    "payout.canceled": ProviderPayoutStatus.CANCELLED,
}

# Stripe's payout `failure_code`s (https://docs.stripe.com/api/payouts/failures) in Prizeflow's codes.
STRIPE_FAILURE_CODES: Final[Mapping[str, PayoutErrorCode]] = {
    "account_closed": PayoutErrorCode.ACCOUNT_CLOSED,
    "no_account": PayoutErrorCode.DESTINATION_NOT_FOUND,
    "invalid_account_number": PayoutErrorCode.INVALID_DESTINATION,
    "incorrect_account_holder_name": PayoutErrorCode.INVALID_DESTINATION,
    "incorrect_account_holder_address": PayoutErrorCode.INVALID_DESTINATION,
    "incorrect_account_holder_tax_id": PayoutErrorCode.INVALID_DESTINATION,
    "bank_ownership_changed": PayoutErrorCode.INVALID_DESTINATION,
    "unsupported_card": PayoutErrorCode.INVALID_DESTINATION,
    "account_frozen": PayoutErrorCode.DESTINATION_BLOCKED,
    "bank_account_restricted": PayoutErrorCode.DESTINATION_BLOCKED,
    "debit_not_authorized": PayoutErrorCode.DESTINATION_BLOCKED,
    "declined": PayoutErrorCode.DESTINATION_BLOCKED,
    "insufficient_funds": PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS,
    "invalid_currency": PayoutErrorCode.UNSUPPORTED_ASSET,
}
UNKNOWN_FAILURE: Final = PayoutErrorCode.TX_FAILED

SESSION_KINDS: Final[Mapping[str, PaymentEventStatus]] = {
    "checkout.session.completed": PaymentEventStatus.PAID,
    "checkout.session.async_payment_succeeded": PaymentEventStatus.PAID,
    "checkout.session.async_payment_failed": PaymentEventStatus.FAILED,
    "checkout.session.expired": PaymentEventStatus.EXPIRED,
}
# Events about a payment intent's money after the fact: their object names only the payment intent.
ADJUSTMENT_KINDS: Final[Mapping[str, PaymentEventStatus]] = {
    "refund.created": PaymentEventStatus.REFUNDED,
    # A refund created `requires_action` (some payment methods) proceeds later: only its update says so. The same
    # refund reported by both events is one adjustment (rewards keys it by the refund's id).
    "refund.updated": PaymentEventStatus.REFUNDED,
    # A refund reported proceeding that then fails or is cancelled gives back what it took (the refund's own status
    # decides, whichever refund event carries it).
    "refund.failed": PaymentEventStatus.REFUND_FAILED,
    "charge.dispute.funds_withdrawn": PaymentEventStatus.DISPUTED,
    "charge.dispute.funds_reinstated": PaymentEventStatus.DISPUTE_WON,
}
_REFUND_PROCEEDING: Final = frozenset({"succeeded", "pending"})
_REFUND_UNDONE: Final = frozenset({"failed", "canceled"})
# Stripe's lowercase currency → Prizeflow asset code, from the asset registry's `provider_codes["stripe"]`.
CURRENCIES: Final[Mapping[str, str]] = {
    code: a.code for a in ASSETS.values() if (code := a.provider_codes.get("stripe")) is not None
}


@dataclass(frozen=True, slots=True)
class EventRef:
    """What identifies a Stripe event: compared between the delivered and the fetched event."""

    event_id: str
    kind: str
    object_id: str | None
    account: str | None


def event_ref(event: Mapping[str, Any]) -> EventRef:
    """The identity of an event document; NormalizationError if it is not one."""
    event_id, kind = event.get("id"), event.get("type")
    if event.get("object") != "event" or not _text(event_id) or not _text(kind):
        raise NormalizationError("not a Stripe event (object, id and type are required)")
    obj = _object(event)
    object_id = obj.get("id")
    account = event.get("account")
    return EventRef(
        event_id=str(event_id),
        kind=str(kind),
        object_id=str(object_id) if _text(object_id) else None,
        account=str(account) if _text(account) else None,
    )


def payment_intent_of(event: Mapping[str, Any]) -> str | None:
    """The payment intent whose metadata a refund or dispute event needs (None for any other event)."""
    if event.get("type") not in ADJUSTMENT_KINDS:
        return None
    pi = _object(event).get("payment_intent")
    return str(pi) if _text(pi) else None


def normalize(
    event: Mapping[str, Any],
    *,
    provider: ProviderType,
    digest: str,
    received_at: datetime,
    payment_intent: Mapping[str, Any] | None = None,
) -> Normalized:
    """The Prizeflow event of a (verified, confirmed) Stripe event; NormalizationError when a handled kind
    cannot be read (missing amount, unknown currency, an id that breaks the contract)."""
    ref = event_ref(event)
    obj = _object(event)
    if ref.account is not None and (
        ref.kind in SESSION_KINDS or ref.kind in ADJUSTMENT_KINDS or ref.kind.startswith("transfer.")
    ):
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.CONNECTED_ACCOUNT)
    if ref.account is None and ref.kind.startswith("payout.") and ref.kind in PAYOUT_KINDS:
        # A bank payout of the platform's own balance: Prizeflow's payouts are made on the player's account.
        return Normalized(ref.event_id, ref.kind, None, None, IgnoredReason.PLATFORM_PAYOUT)
    try:
        if ref.kind in PAYOUT_KINDS:
            return _payout(ref, obj, provider, digest, received_at)
        if ref.kind in SESSION_KINDS:
            return _session(ref, obj, provider, digest, received_at)
        if ref.kind in ADJUSTMENT_KINDS:
            return _adjustment(
                ref, obj, provider=provider, digest=digest, received_at=received_at, payment_intent=payment_intent or {}
            )
    except ValidationError as err:
        raise NormalizationError(f"{ref.kind} {ref.event_id}: {_first_error(err)}") from err
    return Normalized(ref.event_id, ref.kind, _correlation(obj), None, IgnoredReason.KIND_NOT_HANDLED)


def _payout(
    ref: EventRef, obj: Mapping[str, Any], provider: ProviderType, digest: str, received_at: datetime
) -> Normalized:
    status = PAYOUT_KINDS[ref.kind]
    if status is ProviderPayoutStatus.RETURNED and not _returned_in_full(obj):
        status = None  # payouts' rule: only a transfer-mode transfer reversed in full gives the payout back
    error_code = None
    if status is ProviderPayoutStatus.FAILED:
        error_code = STRIPE_FAILURE_CODES.get(str(obj.get("failure_code") or ""), UNKNOWN_FAILURE)
    payload = ProviderEventReceived(
        provider=provider,
        provider_event_id=ref.event_id,
        provider_payout_ref=ref.object_id,
        idempotency_key=_metadata(obj).get("idempotency_key"),
        provider_account=ref.account,
        kind=ref.kind,
        received_at=received_at,
        verified=True,
        status=status,
        error_code=error_code,
        fee=_no_fee(obj) if status is ProviderPayoutStatus.PAID else None,
        payload_digest=digest,
    )
    return Normalized(ref.event_id, ref.kind, _correlation(obj), payload)


def _no_fee(obj: Mapping[str, Any]) -> Money | None:
    """Stripe charges the platform nothing for a transfer, nor for the bank payout a player's connected account
    makes (its fee is the connected account's): 0 in the payout's asset, as the rail's status records it. None when
    the currency is not one of ours (the status sync then records it)."""
    currency = obj.get("currency")
    asset = CURRENCIES.get(currency.lower()) if isinstance(currency, str) else None
    return Money(asset=asset, amount=0) if asset is not None else None


def _session(
    ref: EventRef, obj: Mapping[str, Any], provider: ProviderType, digest: str, received_at: datetime
) -> Normalized:
    status = SESSION_KINDS[ref.kind]
    correlation = _correlation(obj)
    if ref.kind == "checkout.session.completed":
        paid = obj.get("payment_status")
        if paid == "unpaid":
            return Normalized(ref.event_id, ref.kind, correlation, None, IgnoredReason.PAYMENT_PENDING)
        if paid != "paid":
            return Normalized(ref.event_id, ref.kind, correlation, None, IgnoredReason.NO_PAYMENT)
    amount = _money(obj.get("amount_total"), obj.get("currency")) if status is PaymentEventStatus.PAID else None
    top_up = obj.get("client_reference_id") or _metadata(obj).get("top_up_id")
    payload = PaymentEventReceived(
        provider=provider,
        provider_event_id=ref.event_id,
        kind=ref.kind,
        received_at=received_at,
        verified=True,
        status=status,
        top_up_id=top_up,
        session_ref=ref.object_id,
        payment_ref=_ref(obj.get("payment_intent")),
        amount=amount,
        payload_digest=digest,
    )
    return Normalized(ref.event_id, ref.kind, correlation, payload)


def _adjustment(
    ref: EventRef,
    obj: Mapping[str, Any],
    *,
    provider: ProviderType,
    digest: str,
    received_at: datetime,
    payment_intent: Mapping[str, Any],
) -> Normalized:
    pi_meta = _metadata(payment_intent)
    correlation = _correlation(payment_intent) or _correlation(obj)
    status = ADJUSTMENT_KINDS[ref.kind]
    if ref.kind.startswith("refund."):
        refund_status = obj.get("status")
        if refund_status in _REFUND_UNDONE:
            status = PaymentEventStatus.REFUND_FAILED  # rewards gives back only what a refund of this id took
        elif refund_status in _REFUND_PROCEEDING and ref.kind != "refund.failed":
            status = PaymentEventStatus.REFUNDED
        else:
            return Normalized(ref.event_id, ref.kind, correlation, None, IgnoredReason.REFUND_NOT_PROCEEDING)
    payload: NormalizedEvent = PaymentEventReceived(
        provider=provider,
        provider_event_id=ref.event_id,
        kind=ref.kind,
        received_at=received_at,
        verified=True,
        status=status,
        top_up_id=pi_meta.get("top_up_id") or _metadata(obj).get("top_up_id"),
        payment_ref=_ref(obj.get("payment_intent")),
        adjustment_ref=ref.object_id,
        amount=_money(obj.get("amount"), obj.get("currency")),
        payload_digest=digest,
    )
    return Normalized(ref.event_id, ref.kind, correlation, payload)


def _returned_in_full(transfer: Mapping[str, Any]) -> bool:
    """A transfer of a `transfer`-mode payout, reversed in full. A partial reversal leaves the player part of the
    money (a return credits all of it back); in `transfer_and_payout` the reversal is the payouts service's own
    pull-back of a payout that failed or was cancelled, which that payout's own event reports."""
    if _metadata(transfer).get("prizeflow_mode") != "transfer":
        return False
    amount, reversed_ = transfer.get("amount"), transfer.get("amount_reversed")
    if transfer.get("reversed") is True:
        return True
    return isinstance(amount, int) and isinstance(reversed_, int) and 0 < amount <= reversed_


def _money(amount: Any, currency: Any) -> Money:
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise NormalizationError(f"amount must be a positive integer of minor units, got {type(amount).__name__}")
    asset = CURRENCIES.get(str(currency).lower()) if isinstance(currency, str) else None
    if asset is None:
        raise NormalizationError(f"currency {str(currency)[:8]!r} is not an asset Prizeflow takes from Stripe")
    return Money(asset=asset, amount=amount)


def _object(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise NormalizationError("a Stripe event carries its object in data.object")
    return obj


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _correlation(obj: Mapping[str, Any]) -> str | None:
    """`metadata.correlation_id` when it is a usable correlation id (else the caller generates one)."""
    value = _metadata(obj).get("correlation_id")
    return value if is_identifier(value) else None


def _ref(value: Any) -> str | None:
    """An expandable reference: Stripe sends an id, or the object itself when expanded."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return str(value) if _text(value) else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _first_error(err: ValidationError) -> str:
    first = err.errors(include_url=False, include_input=False)[0]
    return f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}"


__all__ = [
    "ADJUSTMENT_KINDS",
    "CURRENCIES",
    "PAYOUT_KINDS",
    "SESSION_KINDS",
    "STRIPE_FAILURE_CODES",
    "EventRef",
    "event_ref",
    "normalize",
    "payment_intent_of",
]
