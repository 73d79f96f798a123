"""The lines no payout of ours explains as its payment, fee or reversal: each a finding, by its kind and its sign
(a stray line; a debit under one of our payouts' names). Pure, no I/O."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_reconciliation.domain.findings import Chains, Finding, OurPayout, beyond, within
from prizeflow_reconciliation.domain.kinds import ExceptionKind

LineKind = StatementLineKind


# What a stray line is, by its kind: one finding each (a fee or a debit of an unrequested payout is in its finding).
_STRAY: Final[Mapping[LineKind, tuple[ExceptionKind, str]]] = {
    LineKind.PAYOUT: (ExceptionKind.UNREQUESTED, "the provider paid money out that matches no payout of ours"),
    LineKind.FEE: (ExceptionKind.UNBOOKED_FEE, "the provider charged a fee that belongs to no payout of ours"),
    LineKind.REVERSAL: (ExceptionKind.UNMATCHED_CREDIT, "money came back at the provider for no payout of ours"),
    LineKind.CREDIT: (
        ExceptionKind.UNMATCHED_CREDIT,
        "money came into the provider balance for no payout of ours (a top-up, an adjustment in our favour)",
    ),
    LineKind.DEBIT: (
        ExceptionKind.UNEXPLAINED_DEBIT,
        "money left the provider balance to no player and as no fee (a bank payout of the balance, an adjustment, "
        "a refund, a dispute)",
    ),
    LineKind.OTHER: (
        ExceptionKind.UNEXPLAINED_DEBIT,
        "money moved at the provider for no payout of ours, listed before lines had a direction: a person places it",
    ),
}


def strays(lines: Sequence[StatementLine], chains: Chains) -> list[Finding]:
    """The lines inside the window that name no payout of ours: each one finding, except the fees and debits the
    provider lists in its asset under the reference of a payout nobody of ours asked for, which are that payout's
    money out (one `unrequested` finding of both: the money at stake is all that left)."""
    unrequested = {
        (line.provider_ref, line.asset) for line in lines if line.kind is LineKind.PAYOUT and line.provider_ref
    }
    riders: dict[tuple[str | None, str], list[StatementLine]] = defaultdict(list)
    for line in lines:
        if line.kind in (LineKind.FEE, LineKind.DEBIT) and (line.provider_ref, line.asset) in unrequested:
            riders[(line.provider_ref, line.asset)].append(line)
    riding = {id(line) for group in riders.values() for line in group}
    found: list[Finding] = []
    for line in lines:
        if id(line) in riding or (line.amount == 0 and line.kind in (LineKind.CREDIT, LineKind.DEBIT)):
            continue  # in its payout's finding; or moved nothing
        kind, detail = _STRAY[line.kind]
        # the riders go with the first payout line of their reference only: two of them are not charged twice
        theirs = (line, *riders.pop((line.provider_ref, line.asset), ())) if line.kind is LineKind.PAYOUT else (line,)
        amount = sum(t.amount for t in theirs)
        if amount > line.amount:
            detail = f"{detail}, and {amount - line.amount} {line.asset} more it cost"
        found.append(Finding(kind, f"line:{line.line_id}", line.asset, amount, None, theirs, detail))
    return beyond(found, chains)


def named_debits(
    p: OurPayout,
    lines: Mapping[LineKind, list[StatementLine]],
    chains: Chains,
    *,
    since: datetime,
    until: datetime,
) -> list[Finding]:
    """Money that left under one of our payouts' names but as neither its payment nor its fee (a debit, or a line
    of an older build with no direction): each line inside the window is a finding, with the payout beside it."""
    found = [
        Finding(
            ExceptionKind.UNEXPLAINED_DEBIT,
            f"line:{line.line_id}",
            line.asset,
            line.amount,
            p,
            (line,),
            f"money left the provider balance under payout {p.payout_id}'s reference, as neither its payment nor "
            "its fee",
        )
        for kind in (LineKind.DEBIT, LineKind.OTHER)
        for line in lines.get(kind, [])
        if line.amount > 0 and within(line.occurred_at, since, until)
    ]
    return beyond(found, chains)


__all__ = ["named_debits", "strays"]
