"""The PayPal Payouts rail's wire rules. Pure: no I/O; the payouts rail and the webhook reader both read them.

Request (`POST /v1/payments/payouts`), built from integer minor units, never through a float:

    {"sender_batch_header": {"sender_batch_id": "…", "email_subject": "…", "recipient_type": "EMAIL"},
     "items": [{"recipient_type": "EMAIL" | "PHONE" | "PAYPAL_ID", "amount": {"value": "12.50", "currency": "USD"},
                "receiver": "…", "sender_item_id": "<our idempotency key>", "note": "…"}]}

An item is a payout: `sender_item_id` is our idempotency key (payouts' `paypal_items`), `payout_item_id` PayPal's
reference. Its `transaction_status` says what became of it (`ITEM_STATES`): paid (SUCCESS), pending (PENDING,
UNCLAIMED, ONHOLD, NEW), not paid and the money back with us (RETURNED, BLOCKED, FAILED, CANCELED, DENIED), or paid
then taken back (REFUNDED, REVERSED). Answers (an item, a batch, an error) are read by `read_item`, `read_batch` and
`read_error`. Its callbacks are read by `paypal` (the webhook face).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Final

from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode
from prizeflow_contracts.ids import IDEMPOTENCY_KEY_PATTERN, PROVIDER_REF_PATTERN
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import ProviderPayoutStatus

P = ProviderPayoutStatus
C = PayoutErrorCode

# --- money ---------------------------------------------------------------------------------------------------------

# The currencies PayPal pays out in; HUF, JPY and TWD take no decimals, every other one two.
CURRENCIES: Final = frozenset(
    {
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "CZK",
        "DKK",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "ILS",
        "INR",
        "JPY",
        "MXN",
        "MYR",
        "NOK",
        "NZD",
        "PHP",
        "PLN",
        "SEK",
        "SGD",
        "THB",
        "TWD",
        "USD",
    }
)
ZERO_DECIMAL: Final = frozenset({"HUF", "JPY", "TWD"})
_VALUE_RE: Final = re.compile(r"(0|[1-9][0-9]{0,17})(\.[0-9]{1,8})?")


def currency_digits(currency: str) -> int:
    """The decimals PayPal takes for `currency`; ValueError for one it does not pay in, or one a Prizeflow asset
    of that code counts in other units (its minor units would not be PayPal's)."""
    if currency not in CURRENCIES:
        raise ValueError(f"PayPal pays no {currency!r}")
    digits = 0 if currency in ZERO_DECIMAL else 2
    if currency in ASSETS and ASSETS[currency].scale != digits:
        raise ValueError(f"{currency}: Prizeflow counts {ASSETS[currency].scale} decimals, PayPal {digits}")
    return digits


def paypal_value(amount: int, currency: str) -> str:
    """Minor units as PayPal's `amount.value`: a decimal string with exactly the currency's digits."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError("an amount is a non-negative integer of minor units")
    digits = currency_digits(currency)
    whole, frac = divmod(amount, 10**digits)
    return f"{whole}.{frac:0{digits}d}" if digits else str(whole)


def minor_units(value: Any, currency: str) -> int:
    """PayPal's decimal string (`"12.50"`) in minor units, exactly: a fraction finer than the currency's digits,
    a negative amount or anything but a string (a float above all) is refused."""
    digits = currency_digits(currency)
    if not isinstance(value, str) or not _VALUE_RE.fullmatch(value):
        raise ValueError("a PayPal amount is a plain decimal string")
    try:
        minor = Decimal(value).scaleb(digits)
    except InvalidOperation as err:  # pragma: no cover - the pattern already guards this
        raise ValueError("not a decimal amount") from err
    if minor != minor.to_integral_value():
        raise ValueError(f"{value!r} has more decimals than {currency} takes")
    return int(minor)


# --- recipients ----------------------------------------------------------------------------------------------------


class RecipientType(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    PAYPAL_ID = "PAYPAL_ID"  # the payer id of a PayPal account: 13 upper-case letters and digits


_EMAIL_RE: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+")
_PHONE_RE: Final = re.compile(r"\+?[1-9][0-9]{6,14}")  # E.164: a country code, at most 15 digits
_PAYER_ID_RE: Final = re.compile(r"[A-Z0-9]{13}")
MAX_EMAIL_CHARS: Final = 127


def check_receiver(recipient_type: RecipientType, receiver: str) -> str:
    """The receiver as PayPal takes it for its type; ValueError (naming the type, never the value) otherwise."""
    if recipient_type is RecipientType.EMAIL:
        ok = len(receiver) <= MAX_EMAIL_CHARS and _EMAIL_RE.fullmatch(receiver) is not None
    elif recipient_type is RecipientType.PHONE:
        ok = _PHONE_RE.fullmatch(receiver) is not None
    else:
        ok = _PAYER_ID_RE.fullmatch(receiver) is not None
    if not ok:
        raise ValueError(f"not a PayPal {recipient_type.value} receiver")
    return receiver


# --- the request ---------------------------------------------------------------------------------------------------

SENDER_ITEM_ID_MAX: Final = 63  # PayPal's limit; payouts' `paypal_items` holds the key within it
SENDER_BATCH_ID_MAX: Final = 127
EMAIL_SUBJECT_MAX: Final = 255
NOTE_MAX: Final = 4000
ITEMS_MAX: Final = 15_000
SENDER_ID_RE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN)
# Every `sender_batch_id` Prizeflow sends starts with it: an item of a batch that does not was paid by another user
# of the PayPal account (its callbacks are ignored, not dead-lettered as a payout Prizeflow does not know).
OUR_BATCH_PREFIX: Final = "pf-"


@dataclass(frozen=True, slots=True)
class ItemSpec:
    """One payout of a batch: `amount` in minor units of `currency`; `sender_item_id` our idempotency key."""

    recipient_type: RecipientType
    receiver: str
    amount: int
    currency: str
    sender_item_id: str
    note: str | None = None


def payout_request(
    sender_batch_id: str,
    email_subject: str,
    items: Sequence[ItemSpec],
    *,
    recipient_type: RecipientType = RecipientType.EMAIL,
) -> dict[str, Any]:
    """The body of `POST /v1/payments/payouts`; ValueError for anything PayPal would refuse."""
    if not 1 <= len(sender_batch_id) <= SENDER_BATCH_ID_MAX or not SENDER_ID_RE.fullmatch(sender_batch_id):
        raise ValueError(f"sender_batch_id: 1-{SENDER_BATCH_ID_MAX} characters of [A-Za-z0-9:_-]")
    if not 1 <= len(email_subject) <= EMAIL_SUBJECT_MAX:
        raise ValueError(f"email_subject: 1-{EMAIL_SUBJECT_MAX} characters")
    if not 1 <= len(items) <= ITEMS_MAX:
        raise ValueError(f"a batch holds 1-{ITEMS_MAX} items")
    if len({i.sender_item_id for i in items}) != len(items):
        raise ValueError("a sender_item_id is in a batch once")
    out = []
    for item in items:
        if len(item.sender_item_id) > SENDER_ITEM_ID_MAX or not SENDER_ID_RE.fullmatch(item.sender_item_id):
            raise ValueError(f"sender_item_id: 1-{SENDER_ITEM_ID_MAX} characters of [A-Za-z0-9:_-]")
        if item.amount <= 0:
            raise ValueError("an item pays a positive amount")
        if item.note is not None and not 1 <= len(item.note) <= NOTE_MAX:
            raise ValueError(f"note: 1-{NOTE_MAX} characters")
        body: dict[str, Any] = {
            "recipient_type": item.recipient_type.value,
            "amount": {"value": paypal_value(item.amount, item.currency), "currency": item.currency},
            "receiver": check_receiver(item.recipient_type, item.receiver),
            "sender_item_id": item.sender_item_id,
        }
        if item.note is not None:
            body["note"] = item.note
        out.append(body)
    header = {
        "sender_batch_id": sender_batch_id,
        "email_subject": email_subject,
        "recipient_type": recipient_type.value,
    }
    return {"sender_batch_header": header, "items": out}


# --- item states ---------------------------------------------------------------------------------------------------


class ItemOutcome(StrEnum):
    """What an item's state means for the payout."""

    PAID = "paid"
    PENDING = "pending"
    NOT_PAID = "not_paid"  # never reached the receiver; the money is back with us (or never left)
    TAKEN_BACK = "taken_back"  # reached the receiver, then came back (a refund by them, a reversal by PayPal)


ITEM_STATES: Final[Mapping[str, ItemOutcome]] = {
    "SUCCESS": ItemOutcome.PAID,
    "PENDING": ItemOutcome.PENDING,
    "NEW": ItemOutcome.PENDING,
    "ONHOLD": ItemOutcome.PENDING,  # under PayPal's review
    "UNCLAIMED": ItemOutcome.PENDING,  # no PayPal account yet: claimable for 30 days, then RETURNED
    "RETURNED": ItemOutcome.NOT_PAID,  # unclaimed for 30 days
    "BLOCKED": ItemOutcome.NOT_PAID,
    "FAILED": ItemOutcome.NOT_PAID,
    "CANCELED": ItemOutcome.NOT_PAID,  # an unclaimed item we cancelled
    "DENIED": ItemOutcome.NOT_PAID,  # refused by PayPal's risk review
    "REFUNDED": ItemOutcome.TAKEN_BACK,  # the receiver sent it back
    "REVERSED": ItemOutcome.TAKEN_BACK,  # PayPal took it back
}
_STATUSES: Final[Mapping[ItemOutcome, ProviderPayoutStatus]] = {
    ItemOutcome.PAID: P.PAID,
    ItemOutcome.PENDING: P.PENDING,
    ItemOutcome.NOT_PAID: P.FAILED,
    ItemOutcome.TAKEN_BACK: P.RETURNED,
}
# A state's code when the item's `errors.name` is none of `ITEM_ERRORS`.
STATE_FAILURES: Final[Mapping[str, PayoutErrorCode]] = {
    "RETURNED": C.DESTINATION_NOT_FOUND,
    "BLOCKED": C.DESTINATION_BLOCKED,
    "DENIED": C.COMPLIANCE_REJECTED,
    "FAILED": C.TX_FAILED,
}
# An item's `errors.name` -> the stable code. Every one is terminal: an item is in one batch, never sent again.
ITEM_ERRORS: Final[Mapping[str, PayoutErrorCode]] = {
    "RECEIVER_UNREGISTERED": C.DESTINATION_NOT_FOUND,
    "RECEIVER_UNCONFIRMED": C.INVALID_DESTINATION,
    "RECEIVER_ACCOUNT_LOCKED": C.DESTINATION_BLOCKED,
    "RECEIVER_ACCOUNT_LIMITATION": C.DESTINATION_BLOCKED,
    "RECEIVER_COUNTRY_NOT_ALLOWED": C.DESTINATION_BLOCKED,
    "RECEIVER_STATE_RESTRICTED": C.DESTINATION_BLOCKED,
    "RECEIVER_YOUTH_ACCOUNT": C.DESTINATION_BLOCKED,
    "CURRENCY_NOT_SUPPORTED_FOR_RECEIVER": C.UNSUPPORTED_ASSET,
    "NON_HOLDING_CURRENCY": C.UNSUPPORTED_ASSET,
    "RECEIVABLE_LIMIT_EXCEEDED": C.AMOUNT_ABOVE_MAXIMUM,
    "TRANSACTION_LIMIT_EXCEEDED": C.AMOUNT_ABOVE_MAXIMUM,
    "ZERO_AMOUNT": C.AMOUNT_BELOW_MINIMUM,
    "REGULATORY_BLOCKED": C.COMPLIANCE_REJECTED,
    "RISK_DECLINE": C.COMPLIANCE_REJECTED,
    "DUPLICATE_ITEM": C.DUPLICATE_REQUEST,
    "INSUFFICIENT_FUNDS": C.TX_FAILED,
}
if any(PAYOUT_ERROR_RETRYABLE[c] for c in (*ITEM_ERRORS.values(), *STATE_FAILURES.values())):
    raise RuntimeError("a PayPal item's failure is terminal")
# The webhook types about one item, and the state each claims.
ITEM_EVENT_PREFIX: Final = "PAYMENT.PAYOUTS-ITEM."
BATCH_EVENT_PREFIX: Final = "PAYMENT.PAYOUTSBATCH."
EVENT_CLAIMS: Final[Mapping[str, str]] = {
    ITEM_EVENT_PREFIX + kind: state
    for kind, state in (
        ("SUCCEEDED", "SUCCESS"),
        ("UNCLAIMED", "UNCLAIMED"),
        ("RETURNED", "RETURNED"),
        ("HELD", "ONHOLD"),
        ("BLOCKED", "BLOCKED"),
        ("REFUNDED", "REFUNDED"),
        ("REVERSED", "REVERSED"),
        ("FAILED", "FAILED"),
        ("CANCELED", "CANCELED"),
        ("DENIED", "DENIED"),
    )
}
# Not PayPal's: the type a confirmed item event is published under when the item moved on since it was sent. It
# claims no state, so the item's state as PayPal holds it now is the one published.
MOVED_ON_KIND: Final = ITEM_EVENT_PREFIX + "MOVED-ON"


def item_status(state: str) -> ProviderPayoutStatus | None:
    """Our status for an item's `transaction_status`; None for a state this vocabulary lacks."""
    outcome = ITEM_STATES.get(state)
    return _STATUSES[outcome] if outcome is not None else None


def failure_code(state: str, error_name: str | None) -> PayoutErrorCode:
    """Why an item ended unpaid, as a stable (terminal) code."""
    return ITEM_ERRORS.get(error_name or "") or STATE_FAILURES.get(state, C.TX_FAILED)


# --- responses -----------------------------------------------------------------------------------------------------

ITEM_ID_RE: Final = re.compile(r"[A-Z0-9]{1,64}")  # what goes into a URL path (`GET …/payouts-item/{id}`)
REF_RE: Final = re.compile(PROVIDER_REF_PATTERN)
_STATE_RE: Final = re.compile(r"[A-Z_]{1,32}")


@dataclass(frozen=True, slots=True)
class PayoutItem:
    """An item as PayPal answers it (`GET /v1/payments/payouts-item/{id}`, a batch's `items`, a callback's
    `resource`); amounts in minor units."""

    payout_item_id: str
    transaction_id: str | None
    state: str  # `transaction_status`, as PayPal spells it
    payout_batch_id: str | None
    sender_item_id: str | None
    sender_batch_id: str | None  # shown when the item is fetched on its own (a confirmed callback's resource)
    currency: str
    amount: int
    fee: int | None  # `payout_item_fee`, in `fee_currency`
    fee_currency: str | None
    error_name: str | None
    time_processed: str | None

    @property
    def status(self) -> ProviderPayoutStatus | None:
        return item_status(self.state)


def _ref(value: Any, what: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not REF_RE.fullmatch(value):
        raise ValueError(f"{what}: 1-255 printable ASCII characters")
    return value


def _money(doc: Any, what: str) -> tuple[str, int]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("currency"), str):
        raise ValueError(f"{what}: {{value, currency}}")
    return doc["currency"], minor_units(doc.get("value"), doc["currency"])


def read_item(doc: Mapping[str, Any]) -> PayoutItem:
    """An item; ValueError for anything else."""
    item_id = _ref(doc.get("payout_item_id"), "payout_item_id", required=True)
    assert item_id is not None
    if not ITEM_ID_RE.fullmatch(item_id):
        raise ValueError("payout_item_id: upper-case letters and digits")
    state = doc.get("transaction_status")
    if not isinstance(state, str) or not _STATE_RE.fullmatch(state):
        raise ValueError("transaction_status: an upper-case word")
    inner = doc.get("payout_item")
    if not isinstance(inner, Mapping):
        raise ValueError("payout_item: the item as sent")
    currency, amount = _money(inner.get("amount"), "payout_item.amount")
    fee_currency, fee = (
        _money(doc["payout_item_fee"], "payout_item_fee") if doc.get("payout_item_fee") else (None, None)
    )
    errors = doc.get("errors")
    name = errors.get("name") if isinstance(errors, Mapping) else None
    processed = doc.get("time_processed")
    return PayoutItem(
        payout_item_id=item_id,
        transaction_id=_ref(doc.get("transaction_id") or None, "transaction_id"),
        state=state,
        payout_batch_id=_ref(doc.get("payout_batch_id"), "payout_batch_id"),
        sender_item_id=inner.get("sender_item_id") if isinstance(inner.get("sender_item_id"), str) else None,
        # Read as it comes: another sender's batch id may be anything PayPal accepts (spaces, 256 characters); only
        # whether it is one of ours matters, and an unreadable one must not refuse the callback.
        sender_batch_id=doc.get("sender_batch_id") if isinstance(doc.get("sender_batch_id"), str) else None,
        currency=currency,
        amount=amount,
        fee=fee,
        fee_currency=fee_currency,
        error_name=name if isinstance(name, str) and _STATE_RE.fullmatch(name) else None,
        time_processed=processed if isinstance(processed, str) else None,
    )


@dataclass(frozen=True, slots=True)
class PayoutBatch:
    """A batch as PayPal answers it: on creation (`batch_header` only) or fetched (`items` too)."""

    payout_batch_id: str
    batch_status: str
    sender_batch_id: str | None
    items: tuple[PayoutItem, ...]


def read_batch(doc: Mapping[str, Any]) -> PayoutBatch:
    """A batch; ValueError for anything else."""
    header = doc.get("batch_header")
    if not isinstance(header, Mapping):
        raise ValueError("batch_header: the batch")
    batch_id = _ref(header.get("payout_batch_id"), "payout_batch_id", required=True)
    status = header.get("batch_status")
    if not isinstance(status, str) or not _STATE_RE.fullmatch(status):
        raise ValueError("batch_status: an upper-case word")
    sender = header.get("sender_batch_header")
    sender_id = sender.get("sender_batch_id") if isinstance(sender, Mapping) else None
    items = doc.get("items") or []
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValueError("items: a list of items")
    assert batch_id is not None
    return PayoutBatch(batch_id, status, _ref(sender_id, "sender_batch_id"), tuple(read_item(i) for i in items))


@dataclass(frozen=True, slots=True)
class PayPalError:
    """PayPal's error answer: `{name, message, debug_id, details: [{field, issue}]}` (`details` as (field, issue))."""

    name: str
    message: str
    debug_id: str | None
    details: tuple[tuple[str, str], ...]


def read_error(doc: Any) -> PayPalError | None:
    """The error an answer carries; None when it is not PayPal's error shape."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
        return None
    details = doc.get("details")
    pairs = tuple(
        (str(d.get("field") or ""), str(d.get("issue") or ""))
        for d in (details if isinstance(details, list) else [])
        if isinstance(d, Mapping)
    )
    debug_id = doc.get("debug_id")
    return PayPalError(
        doc["name"], str(doc.get("message") or ""), debug_id if isinstance(debug_id, str) else None, pairs
    )


__all__ = [
    "BATCH_EVENT_PREFIX",
    "CURRENCIES",
    "EVENT_CLAIMS",
    "ITEM_ERRORS",
    "ITEM_EVENT_PREFIX",
    "ITEM_ID_RE",
    "ITEM_STATES",
    "MOVED_ON_KIND",
    "OUR_BATCH_PREFIX",
    "REF_RE",
    "SENDER_ID_RE",
    "SENDER_ITEM_ID_MAX",
    "STATE_FAILURES",
    "ItemOutcome",
    "ItemSpec",
    "PayPalError",
    "PayoutBatch",
    "PayoutItem",
    "RecipientType",
    "check_receiver",
    "currency_digits",
    "failure_code",
    "item_status",
    "minor_units",
    "payout_request",
    "paypal_value",
    "read_batch",
    "read_error",
    "read_item",
]
