"""The payout life cycle as data, and the rules that steer a payout or a validation by its destination.

States and moves are RazorpayX's (docs: x/payouts/states-life-cycle): `pending` (approval workflow) → `queued` (low
balance, or the partner bank down) or `processing`; `queued` → `processing` or `cancelled`; `processing` → `processed`,
`reversed` or `failed`; a `processed` payout can still become `reversed` days later (a bank return); `rejected` from
`pending`. Each state a payout enters is announced by its webhook (`EVENTS`); `cancelled` has none in RazorpayX's list.

A rule matches a fund account's destination (a VPA `user@psp`, or `IFSC/account_number` for a bank account) with a
shell pattern and says what the bank does with payouts to it and what a validation finds there.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Status(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    PROCESSING = "processing"
    PROCESSED = "processed"
    REVERSED = "reversed"
    FAILED = "failed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


INITIAL: Final = frozenset({Status.PENDING, Status.QUEUED, Status.PROCESSING, Status.FAILED})
TRANSITIONS: Final[Mapping[Status, frozenset[Status]]] = {
    Status.PENDING: frozenset({Status.QUEUED, Status.PROCESSING, Status.REJECTED, Status.FAILED}),
    Status.QUEUED: frozenset({Status.PROCESSING, Status.CANCELLED, Status.FAILED}),
    Status.PROCESSING: frozenset({Status.PROCESSED, Status.REVERSED, Status.FAILED}),
    Status.PROCESSED: frozenset({Status.REVERSED}),
    Status.REVERSED: frozenset(),
    Status.FAILED: frozenset(),
    Status.REJECTED: frozenset(),
    Status.CANCELLED: frozenset(),
}
EVENTS: Final[Mapping[Status, str | None]] = {
    Status.PENDING: "payout.pending",
    Status.QUEUED: "payout.queued",
    Status.PROCESSING: "payout.initiated",
    Status.PROCESSED: "payout.processed",
    Status.REVERSED: "payout.reversed",
    Status.FAILED: "payout.failed",
    Status.REJECTED: "payout.rejected",
    Status.CANCELLED: None,
}
UPDATED: Final = "payout.updated"  # a change without a new state (status_details moved on)
# Money that left the account comes back when a payout ends in one of these (a reversal transaction, fees included).
GIVES_BACK: Final = frozenset({Status.REVERSED, Status.FAILED})


class IllegalTransitionError(ValueError):
    def __init__(self, src: Status, dst: Status) -> None:
        super().__init__(f"a {src.value} payout cannot become {dst.value}")
        self.src, self.dst = src, dst


def check(src: Status, dst: Status) -> None:
    if dst not in TRANSITIONS[src]:
        raise IllegalTransitionError(src, dst)


# reason → (source, description): docs errors/x/payout-status-details, plus `payout_rejected` (the emulator's own:
# RazorpayX's sample shows a bank's reason on an approver's rejection).
REASONS: Final[Mapping[str, tuple[str, str]]] = {
    "payout_processed": (
        "beneficiary_bank",
        "Payout is processed and the money has been credited into the beneficiary account.",
    ),
    "pending_approval": ("business", "Workflow for the payout is pending approval from the approver(s)."),
    "payout_rejected": ("business", "Payout was rejected by the approver(s)."),
    "low_balance": (
        "business",
        "Payout is queued as there is insufficient balance in your account to process the payout.",
    ),
    "gateway_degraded": ("gateway", "Payout is queued as Partner bank systems are down."),
    "beneficiary_bank_down": (
        "gateway",
        "Beneficiary bank's systems are not working. Payout will be processed after the system starts working else "
        "it will be failed after the pre-defined time limit.",
    ),
    "beneficiary_bank_confirmation_pending": (
        "beneficiary_bank",
        "Confirmation of credit to the beneficiary is pending from beneficiary_bank.",
    ),
    "payout_bank_processing": ("gateway", "Payout is being processed by the partner bank."),
    "bank_account_closed": (
        "beneficiary_bank",
        "Payout failed as the beneficiary account is closed. Please contact the beneficiary bank.",
    ),
    "bank_account_frozen": (
        "beneficiary_bank",
        "Payout failed as beneficiary account is frozen. Please contact the beneficiary bank.",
    ),
    "bank_account_invalid": ("beneficiary_bank", "Payout failed due to invalid beneficiary account details."),
    "beneficiary_bank_failure": (
        "beneficiary_bank",
        "Payout failed at the beneficiary bank due to a technical issue. Please retry after 30 min.",
    ),
    "beneficiary_bank_offline": (
        "beneficiary_bank",
        "Beneficiary bank systems are offline. Please retry after 30 min.",
    ),
    "beneficiary_bank_rejected": (
        "beneficiary_bank",
        "Payout rejected by the beneficiary bank. Please contact the beneficiary bank.",
    ),
    "beneficiary_psp_offline": ("beneficiary_bank", "Beneficiary PSP systems are offline. Please retry after 30 min."),
    "imps_not_allowed": (
        "beneficiary_bank",
        "IMPS is not enabled on beneficiary account. Please retry with different mode.",
    ),
    "invalid_ifsc_code": (
        "beneficiary_bank",
        "Payout failed as the IFSC code is invalid. Please correct the IFSC code and retry.",
    ),
    "npci_beneficiary_timeout": (
        "beneficiary_bank",
        "Temporary technical issue between NPCI and the beneficiary bank. Please retry after 30 min.",
    ),
    "transaction_limit_exceeded": (
        "beneficiary_bank",
        "Payout amount greater than the limit supported by the beneficiary account.",
    ),
    "beneficiary_vpa_invalid": (
        "business",
        "UPI validation failed. If the UPI ID is valid, please retry after sometime.",
    ),
    "insufficient_funds": ("business", "Payout failed due to insufficient funds in your account."),
    "gateway_down": ("gateway", "Payout failed as the partner bank is facing technical issues. Please retry."),
    "gateway_technical_error": (
        "gateway",
        "Payout failed due to a temporary technical issue at the partner bank. Please retry after 30 min.",
    ),
    "gateway_timeout": ("gateway", "Payout timed out at the partner bank. Please retry after 30 min."),
    "server_error": ("internal", "Payout failed. Contact support for help."),
}


def status_details(reason: str) -> dict[str, str]:
    source, description = REASONS[reason]
    return {"description": description, "source": source, "reason": reason}


class Outcome(StrEnum):
    """What the bank does with a payout to a matching destination."""

    PROCESSED = "processed"
    FAILED = "failed"  # processing → failed (its debit comes back as a reversal transaction)
    REVERSED = "reversed"  # processing → reversed
    REVERSED_AFTER_PROCESSED = "reversed_after_processed"  # processed, then a bank return `after_s` later
    PROCESSING = "processing"  # stays processing (deemed success) until an operator settles it
    PENDING = "pending"  # waits in the approval workflow until approved or rejected
    REJECTED = "rejected"  # waits in the approval workflow, then rejected


class Validation(StrEnum):
    """What a fund account validation finds at a matching destination."""

    ACTIVE = "active"  # completed, account_status active, the registered name
    INVALID = "invalid"  # completed, account_status invalid
    FAILED = "failed"  # the validation itself failed (the bank did not answer)


DEFAULT_REASONS: Final[Mapping[Outcome, str]] = {
    Outcome.FAILED: "gateway_technical_error",
    Outcome.REVERSED: "beneficiary_bank_offline",
    Outcome.REVERSED_AFTER_PROCESSED: "beneficiary_bank_rejected",
}
THREE_HOURS_S: Final = 3 * 3600


@dataclass
class Rule:
    destination: str  # a shell pattern (fnmatch, case-insensitive) over `user@psp` or `IFSC/account_number`
    payout: Outcome = Outcome.PROCESSED
    reason: str | None = None  # the status_details reason of a failure or reversal (else DEFAULT_REASONS)
    after_s: int = THREE_HOURS_S  # reversed_after_processed: how long after `processed` the bank returns it
    validation: Validation = Validation.ACTIVE
    registered_name: str | None = None  # what a validation reports (else the name on the fund account)
    mode: str | None = None  # only payouts of this mode

    def matches(self, destination: str, mode: str | None = None) -> bool:
        return fnmatch.fnmatch(destination.lower(), self.destination.lower()) and (
            mode is None or self.mode is None or self.mode == mode
        )

    @property
    def failure_reason(self) -> str:
        return self.reason or DEFAULT_REASONS.get(self.payout, "gateway_technical_error")

    @classmethod
    def parse(cls, doc: Any) -> Rule:
        """ValueError naming what is wrong."""
        if not isinstance(doc, dict):
            raise ValueError("a rule is a JSON object")
        known = {"destination", "payout", "reason", "after_s", "validation", "registered_name", "mode"}
        if unknown := sorted(set(doc) - known):
            raise ValueError(f"unknown rule fields {unknown} (known: {sorted(known)})")
        destination = doc.get("destination")
        if not isinstance(destination, str) or not destination:
            raise ValueError("a rule needs `destination`, a pattern over user@psp or IFSC/account_number")
        reason = doc.get("reason")
        if reason is not None and reason not in REASONS:
            raise ValueError(f"reason must be one of {sorted(REASONS)}")
        after_s = doc.get("after_s", THREE_HOURS_S)
        if not isinstance(after_s, int) or isinstance(after_s, bool) or after_s < 0:
            raise ValueError("after_s must be an integer >= 0")
        name, mode = doc.get("registered_name"), doc.get("mode")
        if name is not None and not isinstance(name, str):
            raise ValueError("registered_name must be a string")
        if mode is not None and mode not in ("UPI", "IMPS", "NEFT", "RTGS"):
            raise ValueError("mode must be UPI, IMPS, NEFT or RTGS")
        try:
            payout = Outcome(doc.get("payout", Outcome.PROCESSED))
            validation = Validation(doc.get("validation", Validation.ACTIVE))
        except ValueError:
            raise ValueError(
                f"payout must be one of {[o.value for o in Outcome]}, validation one of {[v.value for v in Validation]}"
            ) from None
        return cls(destination, payout, reason, after_s, validation, name, mode)

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "payout": self.payout.value,
            "reason": self.reason,
            "after_s": self.after_s,
            "validation": self.validation.value,
            "registered_name": self.registered_name,
            "mode": self.mode,
        }


def parse_rules(docs: Any) -> list[Rule]:
    if not isinstance(docs, list):
        raise ValueError("rules are a JSON list")
    return [Rule.parse(d) for d in docs]


def first_match(rules: Sequence[Rule], destination: str, mode: str | None = None) -> Rule | None:
    return next((r for r in rules if r.matches(destination, mode)), None)


# Addresses that behave so without any setup (the devstack's demo, quick tests); UPI_EMULATOR_RULES replaces them.
DEFAULT_RULES: Final = (
    Rule("*.invalid@*", Outcome.FAILED, "beneficiary_vpa_invalid", validation=Validation.INVALID),
    Rule("*.failed@*", Outcome.FAILED, "beneficiary_psp_offline"),
    Rule("*.reversed@*", Outcome.REVERSED, "beneficiary_bank_offline"),
    Rule("*.returned@*", Outcome.REVERSED_AFTER_PROCESSED, "beneficiary_bank_rejected"),
    Rule("*.pending@*", Outcome.PENDING),
    Rule("*.rejected@*", Outcome.REJECTED),
    Rule("*.stuck@*", Outcome.PROCESSING),
    Rule("*.unreachable@*", validation=Validation.FAILED),
    Rule("*/0000*", Outcome.FAILED, "bank_account_invalid", validation=Validation.INVALID),
)


__all__ = [
    "DEFAULT_RULES",
    "EVENTS",
    "GIVES_BACK",
    "INITIAL",
    "REASONS",
    "TRANSITIONS",
    "UPDATED",
    "IllegalTransitionError",
    "Outcome",
    "Rule",
    "Status",
    "Validation",
    "check",
    "first_match",
    "parse_rules",
    "status_details",
]
