"""Reconciliation kinds as rows: what a difference between our payouts and a provider's statement is called, how bad
it is, which resolutions may close it, and the words staff read (docs/adr/0011-reconciliation.md).

Payouts' reconciliation decides with these tables (they are its domain's `SEVERITY`, `ACTIONS` and `MONEY_ACTIONS`,
held equal by a test); the console and the ops CLI list, filter and name exceptions and their resolutions from them,
never from a code typed again. Adding a kind is one row here. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class ExceptionKind(StrEnum):
    UNREQUESTED = "unrequested"  # money left at the provider for no payout of ours
    DUPLICATE = "duplicate"  # one payout of ours paid more than once
    DESTINATION_MISMATCH = "destination_mismatch"  # paid somewhere else than our payout says
    PAID_NOT_RECORDED = "paid_not_recorded"  # paid at the provider, failed/cancelled/rejected here
    OVERPAID = "overpaid"  # the provider paid more than our payout: money out that Prizeflow did not send
    AMOUNT_MISMATCH = "amount_mismatch"  # less than our payout, or another asset
    MISSING = "missing"  # paid here, nothing at the provider
    UNRECORDED_REVERSAL = "unrecorded_reversal"  # the provider gave it back, we still hold it paid
    UNMATCHED_CREDIT = "unmatched_credit"  # money came back for no payout of ours, or came in (a top-up)
    UNEXPLAINED_DEBIT = "unexplained_debit"  # money left the balance to no player and as no fee (a bank payout of it)
    UNBOOKED_FEE = "unbooked_fee"  # a fee the provider charged that nobody booked
    UNKNOWN_OUTCOME = "unknown_outcome"  # a rail cannot tell whether it paid: a person settles it
    LEDGER_MISMATCH = "ledger_mismatch"  # the ledger booked another amount for the payout than it paid, or none
    WITHDRAWN_LINE = "withdrawn_line"  # a line the provider listed for a payout of ours and lists no more


class Severity(StrEnum):
    CRITICAL = "critical"  # pages at once: money left that Prizeflow did not send
    HIGH = "high"
    MEDIUM = "medium"


class ExceptionState(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"


class ReconAction(StrEnum):
    """How a person resolves an exception."""

    ACKNOWLEDGE = "acknowledge"  # on record with a reason; moves no money
    WRITE_OFF = "write_off"  # book the money the provider let out as a loss: treasury → the rail's account
    BOOK_FEE = "book_fee"  # book the provider's fee: treasury → the rail's account
    MARK_RETURNED = "mark_returned"  # the payout did not reach the player: paid → returned, the wallet credited back
    SETTLE_FOUND = "settle_found"  # an unknown outcome was made: record the provider's id, the sync settles it
    SETTLE_NOT_MADE = "settle_not_made"  # an unknown outcome was never made: free it to be asked for again


@dataclass(frozen=True, slots=True)
class ReconActionKind:
    code: ReconAction
    moves_money: bool  # proposed by one person, executed only when a second, different person confirms it
    params: tuple[str, ...]  # what its proposal must carry (the provider's withdrawal id of a withdrawal found)
    label: str  # what staff read: "Propose to <label>", "Resolved: <label>."


RECON_ACTIONS: Final[Mapping[ReconAction, ReconActionKind]] = {
    a.code: a
    for a in (
        ReconActionKind(ReconAction.ACKNOWLEDGE, moves_money=False, params=(), label="acknowledge"),
        ReconActionKind(ReconAction.WRITE_OFF, moves_money=True, params=(), label="write off"),
        ReconActionKind(ReconAction.BOOK_FEE, moves_money=True, params=(), label="book the fee"),
        ReconActionKind(ReconAction.MARK_RETURNED, moves_money=True, params=(), label="mark the payout returned"),
        ReconActionKind(
            ReconAction.SETTLE_FOUND,
            moves_money=True,
            params=("withdrawal_id",),
            label="settle as found (the withdrawal was made)",
        ),
        ReconActionKind(ReconAction.SETTLE_NOT_MADE, moves_money=True, params=(), label="settle as not made"),
    )
}


@dataclass(frozen=True, slots=True)
class ReconKind:
    code: ExceptionKind
    severity: Severity
    actions: tuple[ReconAction, ...]  # the resolutions payouts accepts for it, in the order they are offered
    label: str  # what staff read: the difference in one sentence


_ACK, _WRITE_OFF, _RETURNED = ReconAction.ACKNOWLEDGE, ReconAction.WRITE_OFF, ReconAction.MARK_RETURNED

RECON_KINDS: Final[Mapping[ExceptionKind, ReconKind]] = {
    k.code: k
    for k in (
        ReconKind(
            ExceptionKind.UNREQUESTED,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF),
            "The provider paid money out that matches no payout of ours",
        ),
        ReconKind(
            ExceptionKind.DUPLICATE,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF),
            "The provider paid one payout of ours more than once",
        ),
        ReconKind(
            ExceptionKind.DESTINATION_MISMATCH,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF, _RETURNED),
            "The provider's line went to another destination than our payout",
        ),
        ReconKind(
            ExceptionKind.PAID_NOT_RECORDED,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF),
            "The provider paid a payout we hold as failed, cancelled or rejected",
        ),
        ReconKind(
            ExceptionKind.OVERPAID,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF),
            "The provider paid more than our payout: the excess left without Prizeflow sending it",
        ),
        # Less than the payout: nothing left the platform to write off; a person settles it with the player.
        ReconKind(
            ExceptionKind.AMOUNT_MISMATCH,
            Severity.HIGH,
            (_ACK,),
            "The provider's amount or asset differs from our payout",
        ),
        ReconKind(
            ExceptionKind.MISSING,
            Severity.HIGH,
            (_ACK, _RETURNED),
            "We hold the payout as paid; the provider has no line for it",
        ),
        ReconKind(
            ExceptionKind.UNRECORDED_REVERSAL,
            Severity.HIGH,
            (_ACK, _RETURNED),
            "The provider reversed or returned a payout we hold as paid",
        ),
        ReconKind(
            ExceptionKind.UNMATCHED_CREDIT,
            Severity.MEDIUM,
            (_ACK,),
            "Money came into the provider balance for no payout of ours (a return, a top-up, an adjustment)",
        ),
        # A bank payout of the platform's balance (to the account on file, or one an attacker set), an adjustment,
        # a refund or a dispute: a person names what it was (a treasury sweep is acknowledged with its record).
        ReconKind(
            ExceptionKind.UNEXPLAINED_DEBIT,
            Severity.CRITICAL,
            (_ACK, _WRITE_OFF),
            "Money left the provider balance to no player and as no fee",
        ),
        ReconKind(
            ExceptionKind.UNBOOKED_FEE,
            Severity.MEDIUM,
            (_ACK, ReconAction.BOOK_FEE),
            "The provider charged a fee nobody booked",
        ),
        # Acknowledge: the rail's own sync settled it meanwhile (the payout's state says so).
        ReconKind(
            ExceptionKind.UNKNOWN_OUTCOME,
            Severity.HIGH,
            (_ACK, ReconAction.SETTLE_FOUND, ReconAction.SETTLE_NOT_MADE),
            "An exchange withdrawal whose outcome is unknown waits for a person",
        ),
        # The ledger is corrected by a ledger correction (two people, in rewards); the exception records what was done.
        ReconKind(
            ExceptionKind.LEDGER_MISMATCH,
            Severity.HIGH,
            (_ACK,),
            "The ledger's postings for the rail disagree with the payouts or the provider",
        ),
        # Evidence changed under us: what was matched, booked or found on that line stands on nothing the provider
        # shows now. A person finds out why (a correction at the provider, an attempt to hide money) and records it.
        ReconKind(
            ExceptionKind.WITHDRAWN_LINE,
            Severity.HIGH,
            (_ACK,),
            "The provider no longer lists a line it listed before for a payout of ours",
        ),
    )
}


def recon_kind(code: str | None) -> ReconKind | None:
    """The row of an exception's `kind` (None: none, or a kind this build does not know)."""
    if code is None:
        return None
    try:
        return RECON_KINDS[ExceptionKind(code)]
    except ValueError:
        return None


def recon_action(code: str | None) -> ReconActionKind | None:
    """The row of a resolution's `action` (None: none, or an action this build does not know)."""
    if code is None:
        return None
    try:
        return RECON_ACTIONS[ReconAction(code)]
    except ValueError:
        return None


__all__ = [
    "RECON_ACTIONS",
    "RECON_KINDS",
    "ExceptionKind",
    "ExceptionState",
    "ReconAction",
    "ReconActionKind",
    "ReconKind",
    "Severity",
    "recon_action",
    "recon_kind",
]
