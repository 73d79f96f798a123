"""The gift-card provider's (Tremendous-shaped) webhook signature and status vocabulary, pure: the `gift_card`
payout rail and the webhook ingress share it, so the two readings of one event cannot drift apart.

Signature: `Tremendous-Webhook-Signature: sha256=<hex HMAC-SHA256 of the raw body>` under the webhook's private
key. It carries no timestamp, so a captured delivery can be replayed: receivers deduplicate on the event's
`uuid` and read the status from the resource fetched back from the API, never from the delivery itself.

Status: an order is `EXECUTED`, `PENDING APPROVAL`, `PENDING INTERNAL PAYMENT APPROVAL`, `CART`, `CANCELED` or
`FAILED`; its reward's `delivery.status` is `SCHEDULED`, `PENDING`, `SUCCEEDED`, `FAILED` or `CANCELED`. A payout
is paid once the card is delivered (`EXECUTED` + `SUCCEEDED`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_contracts.webhook_signatures import SignatureFailure, SignatureRefused

GIFTCARD_SIGNATURE_HEADER: Final = "tremendous-webhook-signature"
DEFAULT_SCALE: Final = 2  # a currency Prizeflow has no asset for: the provider's amounts have at most 2 decimals
_PREFIX: Final = "sha256="
P = ProviderPayoutStatus

# Orders still waiting for someone (the organisation's approver, the provider's payment review).
WAITING_ORDER_STATUSES: Final = frozenset({"PENDING APPROVAL", "PENDING INTERNAL PAYMENT APPROVAL", "CART"})
DELIVERY_STATUSES: Final[Mapping[str, ProviderPayoutStatus]] = {
    "SCHEDULED": P.PENDING,
    "PENDING": P.PENDING,
    "SUCCEEDED": P.PAID,
    "FAILED": P.FAILED,
    "CANCELED": P.CANCELLED,
}
# What each event kind claims; the status published is the fetched resource's, and only when they agree.
EVENT_CLAIMS: Final[Mapping[str, ProviderPayoutStatus]] = {
    "REWARDS.DELIVERY.SUCCEEDED": P.PAID,
    "REWARDS.DELIVERY.FAILED": P.FAILED,
    "REWARDS.CANCELED": P.CANCELLED,
    "ORDERS.CANCELED": P.CANCELLED,
    "ORDERS.FAILED": P.FAILED,
}


def giftcard_signature(private_key: str, body: bytes) -> str:
    """The header value a provider sends for `body`."""
    return _PREFIX + hmac.new(private_key.encode(), body, hashlib.sha256).hexdigest()


def verify_giftcard_signature(headers: Mapping[str, str], body: bytes, *, keys: Iterable[str]) -> None:
    """Raises `SignatureRefused` unless the header is `sha256=<hex>` matching one of `keys` (constant time, every
    key compared: a rotation holds two)."""
    secrets = [k for k in keys if k]
    if not secrets:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no webhook key configured")
    raw = next((v for k, v in headers.items() if k.lower() == GIFTCARD_SIGNATURE_HEADER), None)
    if raw is None or not raw.strip():
        raise SignatureRefused(SignatureFailure.MISSING, "no Tremendous-Webhook-Signature header")
    given = raw.strip()
    digest = given.removeprefix(_PREFIX)
    if not given.startswith(_PREFIX) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise SignatureRefused(SignatureFailure.MALFORMED, "the signature is sha256= and 64 lowercase hex characters")
    matched = False
    for key in secrets:
        matched |= hmac.compare_digest(giftcard_signature(key, body), given)
    if not matched:
        raise SignatureRefused(SignatureFailure.MISMATCH, "no signature matches a configured key")


def order_status(order_status: str, delivery_status: str | None) -> ProviderPayoutStatus | None:
    """The payout status an order and its reward's delivery say; None for a status this vocabulary lacks."""
    if order_status == "FAILED":
        return P.FAILED
    if order_status == "CANCELED":
        return P.CANCELLED
    if order_status in WAITING_ORDER_STATUSES:
        return P.PENDING
    if order_status == "EXECUTED":
        return DELIVERY_STATUSES.get(delivery_status or "")
    return None


def failure_code(order_status: str) -> PayoutErrorCode:
    """Why a failed order failed, stably: the provider refused the order itself, or the card never arrived."""
    return PayoutErrorCode.TX_FAILED if order_status == "FAILED" else PayoutErrorCode.INVALID_DESTINATION


def minor_units(value: Any, currency: str) -> int:
    """A decimal amount of `currency` in minor units, exactly (never rounded: a fraction of a cent is refused)."""
    scale = ASSETS[currency].scale if currency in ASSETS else DEFAULT_SCALE
    try:
        minor = Decimal(str(value)).scaleb(scale)
    except InvalidOperation as err:
        raise ValueError("not a decimal amount") from err
    if minor != minor.to_integral_value() or minor < 0:
        raise ValueError("an amount with more decimals than its currency has, or negative")
    return int(minor)


def order_fees(order: Mapping[str, Any], currency: str) -> int:
    """The fee the provider charged the funding source on an order (`payment.fees.value`), in minor units of
    `currency`: 0 when it names none. The rail's status, its statement and the webhook ingress all read it here,
    so a payout paid by any of them records the same fee."""
    payment = order.get("payment")
    fees = payment.get("fees") if isinstance(payment, Mapping) else None
    value = fees.get("value") if isinstance(fees, Mapping) else None
    return minor_units(value or 0, currency)


def event_status(kind: str, fetched: ProviderPayoutStatus | None) -> ProviderPayoutStatus | None:
    """The status an event publishes: what its kind claims, when the resource fetched back says the same; None
    otherwise (an older event delivered late, or a kind that moves nothing: the status sync stays the judge)."""
    claim = EVENT_CLAIMS.get(kind)
    return claim if claim is not None and claim is fetched else None


__all__ = [
    "DEFAULT_SCALE",
    "DELIVERY_STATUSES",
    "EVENT_CLAIMS",
    "GIFTCARD_SIGNATURE_HEADER",
    "WAITING_ORDER_STATUSES",
    "event_status",
    "failure_code",
    "giftcard_signature",
    "minor_units",
    "order_fees",
    "order_status",
    "verify_giftcard_signature",
]
