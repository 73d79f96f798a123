"""A payout item's life cycle as data, and the rules that choose an item's outcome by its receiver.

Item states are PayPal's `transaction_status` (docs: payments.payouts-batch/v1 `transaction_enum`): SUCCESS, FAILED,
PENDING, UNCLAIMED, RETURNED, ONHOLD, BLOCKED, REFUNDED, REVERSED. An item is PENDING when its batch is accepted; when
the batch is processed (`PAYPAL_EMULATOR_PROCESS_MS` later, on the emulator's clock) the first matching rule says
what it becomes. Later moves are PayPal's own (an unclaimed item returned after 30 days, or cancelled) or an
operator's lever (release, refund, reverse, return, fail).

A rule matches the receiver (an email, a phone number or a PayPal payer id) with a case-insensitive shell pattern,
optionally only for one `recipient_type`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Status(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    PENDING = "PENDING"
    UNCLAIMED = "UNCLAIMED"
    RETURNED = "RETURNED"
    ONHOLD = "ONHOLD"
    BLOCKED = "BLOCKED"
    REFUNDED = "REFUNDED"
    REVERSED = "REVERSED"


TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    Status.PENDING: frozenset({Status.SUCCESS, Status.UNCLAIMED, Status.ONHOLD, Status.BLOCKED, Status.FAILED}),
    Status.UNCLAIMED: frozenset({Status.SUCCESS, Status.RETURNED}),  # claimed; returned (30 days, or cancelled)
    Status.ONHOLD: frozenset({Status.SUCCESS, Status.RETURNED, Status.FAILED}),  # released; the review said no
    Status.SUCCESS: frozenset({Status.REFUNDED, Status.REVERSED}),  # the receiver refunds; PayPal reverses
    Status.FAILED: frozenset(),
    Status.BLOCKED: frozenset(),
    Status.RETURNED: frozenset(),
    Status.REFUNDED: frozenset(),
    Status.REVERSED: frozenset(),
}
# Money left the balance for an item in these states (its T0001 line and fee exist and were not given back).
DEBITED: Final = frozenset({Status.SUCCESS, Status.UNCLAIMED, Status.ONHOLD})
# Nothing was paid: the batch is DENIED when every item ends so.
NOT_PAID: Final = frozenset({Status.FAILED, Status.BLOCKED})


class IllegalTransitionError(ValueError):
    def __init__(self, src: Status, dst: Status) -> None:
        super().__init__(f"a {src.value} item cannot become {dst.value}")
        self.src, self.dst = src, dst


def check(src: Status, dst: Status) -> None:
    if dst not in TRANSITIONS[src]:
        raise IllegalTransitionError(src, dst)


class Outcome(StrEnum):
    """What processing does with an item to a matching receiver."""

    SUCCESS = "SUCCESS"
    PENDING = "PENDING"  # stays PENDING (batch PROCESSING) until an operator releases or fails it
    UNCLAIMED = "UNCLAIMED"  # no PayPal account: debited, RETURNED after PAYPAL_EMULATOR_UNCLAIMED_DAYS
    ONHOLD = "ONHOLD"  # debited and held for review until released (SUCCESS) or returned
    BLOCKED = "BLOCKED"  # blocked (compliance), nothing paid
    FAILED = "FAILED"  # failed with `error` (default RECEIVER_ACCOUNT_LOCKED), nothing paid
    DENIED = "DENIED"  # FAILED with `error` (default RISK_DECLINE), announced as PAYMENT.PAYOUTS-ITEM.DENIED


DEFAULT_ERRORS: Final[Mapping[Outcome, str]] = {
    Outcome.UNCLAIMED: "RECEIVER_UNREGISTERED",
    Outcome.BLOCKED: "REGULATORY_BLOCKED",
    Outcome.FAILED: "RECEIVER_ACCOUNT_LOCKED",
    Outcome.DENIED: "RISK_DECLINE",
}
# Item error names PayPal documents (payouts negative testing and the payouts activity log), with their messages.
ITEM_ERRORS: Final[Mapping[str, str]] = {
    "RECEIVER_UNREGISTERED": "Receiver is unregistered",
    "RECEIVER_UNCONFIRMED": "Receiver is unconfirmed",
    "RECEIVER_ACCOUNT_LOCKED": "Receiver account is locked or inactive",
    "RECEIVER_ACCOUNT_LIMITATION": "Receiver account has a limitation",
    "RECEIVER_COUNTRY_NOT_ALLOWED": "Payouts to the receiver's country are not allowed",
    "RECEIVER_YOUTH_ACCOUNT": "Receiver has a youth account",
    "RECEIVING_LIMIT_EXCEEDED": "The payment would exceed the receiver's receiving limit",
    "REGULATORY_BLOCKED": "This transaction is blocked due to regulatory compliance restrictions.",
    "REGULATORY_PENDING": "This transaction requires regulatory review.",
    "RISK_DECLINE": "Transaction declined due to risk",
    "CURRENCY_COMPLIANCE": "Due to currency compliance regulations, this transaction is not allowed",
    "CURRENCY_NOT_SUPPORTED_FOR_RECEIVER": "The currency is not supported for the receiver",
    "CLOSED_MARKET": "Market closed and transaction is between 2 different countries",
    "SELF_PAY_NOT_ALLOWED": "Sender and receiver are the same account",
    "TRANSACTION_LIMIT_EXCEEDED": "The payment exceeds the transaction limit",
    "DUPLICATE_ITEM": "This item is a duplicate of an item in the batch",
    "INVALID_EMAIL": "The receiver's email address is invalid",
    "ZERO_AMOUNT": "The amount is zero",
    "UNDEFINED": "An undefined error occurred",
}
_ERROR_NAME: Final = re.compile(r"[A-Z][A-Z0-9_]{2,63}")
RECIPIENT_TYPES: Final = ("EMAIL", "PHONE", "PAYPAL_ID")


@dataclass
class Rule:
    receiver: str  # a shell pattern (fnmatch, case-insensitive) over the receiver
    outcome: Outcome = Outcome.SUCCESS
    error: str | None = None  # the item's `errors.name` (else DEFAULT_ERRORS)
    recipient_type: str | None = None  # only receivers of this type

    def matches(self, recipient_type: str, receiver: str) -> bool:
        return (self.recipient_type is None or self.recipient_type == recipient_type) and fnmatch.fnmatch(
            receiver.lower(), self.receiver.lower()
        )

    @property
    def error_name(self) -> str | None:
        return self.error or DEFAULT_ERRORS.get(self.outcome)

    @classmethod
    def parse(cls, doc: Any) -> Rule:
        """ValueError naming what is wrong."""
        if not isinstance(doc, dict):
            raise ValueError("a rule is a JSON object")
        known = {"receiver", "outcome", "error", "recipient_type"}
        if unknown := sorted(set(doc) - known):
            raise ValueError(f"unknown rule fields {unknown} (known: {sorted(known)})")
        receiver = doc.get("receiver")
        if not isinstance(receiver, str) or not receiver:
            raise ValueError("a rule needs `receiver`, a shell pattern over the receiver (email, phone or payer id)")
        try:
            outcome = Outcome(doc.get("outcome", Outcome.SUCCESS))
        except ValueError:
            raise ValueError(f"outcome must be one of {[o.value for o in Outcome]}") from None
        error = doc.get("error")
        if error is not None and (not isinstance(error, str) or not _ERROR_NAME.fullmatch(error)):
            raise ValueError("error must be an error name in capitals (RECEIVER_ACCOUNT_LOCKED)")
        recipient_type = doc.get("recipient_type")
        if recipient_type is not None and recipient_type not in RECIPIENT_TYPES:
            raise ValueError(f"recipient_type must be one of {list(RECIPIENT_TYPES)}")
        return cls(receiver, outcome, error, recipient_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "outcome": self.outcome.value,
            "error": self.error_name,
            "recipient_type": self.recipient_type,
        }


def parse_rules(docs: Any) -> list[Rule]:
    if not isinstance(docs, list):
        raise ValueError("rules are a JSON list")
    return [Rule.parse(d) for d in docs]


def first_match(rules: Sequence[Rule], recipient_type: str, receiver: str) -> Rule | None:
    return next((r for r in rules if r.matches(recipient_type, receiver)), None)


# Receivers that behave so without any setup; PAYPAL_EMULATOR_RULES replaces them. Emails by the end of their local
# part, phone numbers by their last four digits, payer ids by their start (13 characters, e.g. FAILED0000001).
_EMAIL_TAGS: Final = {
    "unclaimed": Outcome.UNCLAIMED,
    "pending": Outcome.PENDING,
    "onhold": Outcome.ONHOLD,
    "blocked": Outcome.BLOCKED,
    "failed": Outcome.FAILED,
    "denied": Outcome.DENIED,
}
_PHONE_SUFFIXES: Final = {
    "9901": Outcome.UNCLAIMED,
    "9902": Outcome.PENDING,
    "9903": Outcome.ONHOLD,
    "9904": Outcome.BLOCKED,
    "9905": Outcome.FAILED,
    "9906": Outcome.DENIED,
}
DEFAULT_RULES: Final = (
    *(Rule(f"*.{tag}@*", outcome, recipient_type="EMAIL") for tag, outcome in _EMAIL_TAGS.items()),
    *(Rule(f"*{suffix}", outcome, recipient_type="PHONE") for suffix, outcome in _PHONE_SUFFIXES.items()),
    *(Rule(f"{tag}*", outcome, recipient_type="PAYPAL_ID") for tag, outcome in _EMAIL_TAGS.items()),
)


__all__ = [
    "DEBITED",
    "DEFAULT_ERRORS",
    "DEFAULT_RULES",
    "ITEM_ERRORS",
    "NOT_PAID",
    "RECIPIENT_TYPES",
    "TRANSITIONS",
    "IllegalTransitionError",
    "Outcome",
    "Rule",
    "Status",
    "check",
    "first_match",
    "parse_rules",
]
