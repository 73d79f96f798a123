"""Reconciliation: our payouts against a provider's statement, line by line (docs/adr/0011-reconciliation.md).

Pure rules, no I/O. `reconcile` matches a window's statement lines to payouts by the identifiers the rails carry
(our idempotency key or payout id as `reference`, the provider's own reference as `provider_ref`) and names every
difference as a `Finding`. Findings are about money, not keys: a difference (kind, subject) is a chain of exceptions,
each claiming money the ones before it did not (`Chain`), so the same difference found by two runs is one exception,
and money that moves again later is a new one for exactly what the chain does not hold yet, whatever became of the
earlier ones (booked, written off, returned, acknowledged). The kinds, their severities and resolutions are
`kinds.py`'s (read from their row in the contracts).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Protocol

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_reconciliation.domain.findings import Chain, Chains, Finding, OurPayout, beyond, within
from prizeflow_reconciliation.domain.kinds import ExceptionKind
from prizeflow_reconciliation.domain.strays import named_debits, strays

LineKind = StatementLineKind


# States of a payout as reconciliation reads them.
PAID_STATES: Final = frozenset({"paid", "returned"})
NEVER_PAID_STATES: Final = frozenset({"failed", "cancelled", "rejected"})


@dataclass(slots=True)
class Totals:
    """One asset's money over the window, in minor units: ours paid, theirs paid out, their fees and reversals,
    other money out and in, and the provider balance's net movement (out: payouts + fees + debits, less reversals
    and credits)."""

    ours_paid: int = 0
    ledger: int | None = None  # what the ledger booked for our payouts of the window and its adjustments
    theirs_paid: int = 0
    fees: int = 0
    reversals: int = 0
    debits: int = 0  # out to no player and as no fee (and the lines of older builds, which have no direction)
    credits: int = 0  # in, and no payout's reversal
    fees_inside: bool = False  # the rail's payout lines already hold its fees (the exchange's gross withdrawals)

    @property
    def provider_movement(self) -> int:
        fees = 0 if self.fees_inside else self.fees
        return self.theirs_paid + fees + self.debits - self.reversals - self.credits


@dataclass(slots=True)
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    matched: int = 0
    lines: int = 0
    totals: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    # Every line that names one of our payouts, with its payout: remembered, so a later run of another window sees
    # the payout's whole history (paid again later, paid while in flight and failed here since, paid before we knew).
    named: list[tuple[str, StatementLine]] = field(default_factory=list)
    # Differences the statement now answers: payouts found missing that the provider lists after all (their open
    # `missing` exceptions are closed by the run: the payment is there, whatever else is found about it).
    answered: list[tuple[ExceptionKind, str]] = field(default_factory=list)
    # Fees the statement is the first of the provider's answers to carry (a payout paid by an answer that named no
    # fee): (payout id, asset, amount), recorded with the payout as its status would have, never raised.
    fees_learned: list[tuple[str, str, int]] = field(default_factory=list)


class _Index:
    """Our payouts by every identifier a statement line may carry."""

    def __init__(self, payouts: Iterable[OurPayout]) -> None:
        self.by_key: dict[str, OurPayout] = {}
        self.by_ref: dict[str, OurPayout] = {}
        for p in payouts:
            self.by_key[p.idempotency_key] = p
            self.by_key[p.payout_id] = p
            if p.provider_ref:
                self.by_ref[p.provider_ref] = p

    def learn(self, lines: Iterable[StatementLine]) -> None:
        """The provider's references our payouts never stored, from the lines that carry ours beside theirs: a
        payout that failed at the provider before we kept its reference (a UPI payout debited, then failed) has its
        reversal listed under the provider's reference only, and is found by it."""
        for line in lines:
            if line.provider_ref is None or line.provider_ref in self.by_ref or line.reference is None:
                continue
            if (p := self.by_key.get(line.reference)) is not None and p.provider_ref is None:
                self.by_ref[line.provider_ref] = p

    def find(self, line: StatementLine) -> OurPayout | None:
        if line.reference is not None and (p := self.by_key.get(line.reference)) is not None:
            return p
        if line.provider_ref is not None:
            return self.by_ref.get(line.provider_ref)
        return None


def stray_subjects(
    lines: Iterable[StatementLine], payouts: Iterable[OurPayout], *, since: datetime, until: datetime
) -> list[str]:
    """What `reconcile` names the window's lines that belong to no payout of ours (their chains are read with the
    payouts')."""
    lines = list(lines)
    index = _Index(payouts)
    index.learn(lines)
    return sorted(
        f"line:{line.line_id}" for line in lines if index.find(line) is None and within(line.occurred_at, since, until)
    )


def reconcile(
    lines: Sequence[StatementLine],
    payouts: Iterable[OurPayout],
    *,
    since: datetime,
    until: datetime,
    adjustments: Mapping[str, int] | None = None,
    fees_inside: bool = False,
    chains: Chains | None = None,
    withdrawn: Sequence[StatementLine] = (),
) -> Outcome:
    """Match a statement to our payouts for the window [since, until).

    `lines` are the statement's (they may reach past the window on both sides, and hold what earlier runs remembered
    of the payouts they name) (a payout paid at 10:59:59 may be listed at 11:00:01): they
    match our payouts, but only lines inside the window can be found unrequested, and only payouts paid inside
    it can be found missing. `payouts` are ours paid in the window, plus any a line names, plus those whose
    outcome is unknown. `adjustments`: per asset, what the ledger booked for this provider's resolved exceptions in
    the window (None: the ledger is not compared). `fees_inside`: the rail's payout lines hold its fees (the fee
    lines say what part of them the provider kept), so they are not money out a second time. `chains`: the exceptions
    already found about these payouts and lines (`Chain`); a finding is only what they do not claim yet.
    `withdrawn`: lines earlier runs saw name a payout of ours that the provider no longer lists where this run read
    (each a `withdrawn_line` finding, once; not matched by this run).

    A payout held paid is checked over its whole remembered history by every run that reads it: a later window's run
    finds what happened to it since (paid again, given back, charged more), never its first payment listed late."""
    chains = chains or {}
    out = Outcome()
    out.totals = defaultdict(lambda: Totals(fees_inside=fees_inside))
    ours = list(payouts)
    index = _Index(ours)
    index.learn(lines)
    by_payout: dict[str, dict[LineKind, list[StatementLine]]] = defaultdict(lambda: defaultdict(list))
    stray_lines: list[StatementLine] = []
    for line in lines:
        payout = index.find(line)
        if payout is not None:
            by_payout[payout.payout_id][line.kind].append(line)
            out.named.append((payout.payout_id, line))
        elif within(line.occurred_at, since, until):
            _counted(out, line)
            stray_lines.append(line)
    out.findings.extend(strays(stray_lines, chains))
    out.findings.extend(beyond([_withdrawn(line, index.find(line)) for line in withdrawn], chains))
    if adjustments is not None:
        for asset, amount in adjustments.items():
            out.totals[asset].ledger = amount
    for payout in sorted(ours, key=lambda p: p.payout_id):
        mine = by_payout.get(payout.payout_id, {})
        paid_here = within(payout.paid_at, since, until) and payout.state in PAID_STATES
        # A payout's lines count in the window it was paid in, wherever the provider dates them (a transfer made at
        # 10:59:58 and paid at 11:00:01 is the 11:00 window's on both sides); a payout not paid, by their own dates.
        for kind_lines in mine.values():
            for line in kind_lines:
                if paid_here or (payout.paid_at is None and within(line.occurred_at, since, until)):
                    _counted(out, line)
        if paid_here:
            totals = out.totals[payout.asset]
            totals.ours_paid += payout.amount
            if adjustments is not None:
                totals.ledger = (totals.ledger or 0) + (payout.ledger or 0)
        _check(out, payout, mine, chains, since=since, until=until)
        out.findings.extend(named_debits(payout, mine, chains, since=since, until=until))
    return out


def _withdrawn(line: StatementLine, payout: OurPayout | None) -> Finding:
    """A line an earlier run saw name our payout, which the provider's statement no longer lists where this run read
    it: what was matched or found on it stands on nothing the provider shows now."""
    return Finding(
        ExceptionKind.WITHDRAWN_LINE,
        f"line:{line.line_id}",
        line.asset,
        line.amount,
        payout,
        (line,),
        f"the provider listed a {line.kind.value} line of {line.amount} {line.asset} on "
        f"{line.occurred_at.isoformat()} for this payout and lists it no more",
    )


def _counted(out: Outcome, line: StatementLine) -> None:
    out.lines += 1
    _count(out.totals[line.asset], line)


def _count(totals: Totals, line: StatementLine) -> None:
    if line.kind is LineKind.PAYOUT:
        totals.theirs_paid += line.amount
    elif line.kind is LineKind.FEE:
        totals.fees += line.amount
    elif line.kind is LineKind.REVERSAL:
        totals.reversals += line.amount
    elif line.kind is LineKind.CREDIT:
        totals.credits += line.amount
    else:
        totals.debits += line.amount


def _raised(chains: Chains, kind: ExceptionKind, subject: str) -> int:
    chain = chains.get((kind, subject))
    return chain.amount if chain is not None else 0


def _check(
    out: Outcome,
    p: OurPayout,
    lines: Mapping[LineKind, list[StatementLine]],
    chains: Chains,
    *,
    since: datetime,
    until: datetime,
) -> None:
    paid_lines = sorted(lines.get(LineKind.PAYOUT, []), key=lambda line: (line.occurred_at, line.line_id))
    subject = f"payout:{p.payout_id}"
    found: list[Finding] = []

    def finding(
        kind: ExceptionKind,
        asset: str | None,
        amount: int | None,
        theirs: Sequence[StatementLine],
        detail: str,
        *,
        about: str = subject,
    ) -> None:
        found.append(Finding(kind, about, asset, amount, p, tuple(theirs), detail))

    paid_here = p.state in PAID_STATES and within(p.paid_at, since, until)
    if p.unknown_outcome:
        finding(
            ExceptionKind.UNKNOWN_OUTCOME,
            p.asset,
            p.amount,
            paid_lines,
            "the rail cannot tell whether it paid; the provider's statement "
            + ("shows a payout for it" if paid_lines else "shows none"),
            about=f"{subject}:unknown:{p.unknown_since.isoformat() if p.unknown_since else ''}",
        )
    elif p.state in PAID_STATES:
        # Over the payout's whole remembered history, by whichever run reads it: the run of the window it was paid
        # in finds it missing and holds it to the ledger; any run finds what its lines show that no exception holds.
        p = _learn_fee(p, paid_lines, lines.get(LineKind.FEE, []), chains, out)
        _paid(p, paid_lines, lines, chains, finding, missing=paid_here)
        if paid_here:
            _ledger(p, finding)
        if paid_lines and (ExceptionKind.MISSING, subject) in chains:
            out.answered.append((ExceptionKind.MISSING, subject))
    elif p.state in NEVER_PAID_STATES and paid_lines:
        # Money that left and came back in full (a bounced card, a bank payout that failed and was pulled back) is
        # a payout that failed at the provider too: nothing is out.
        reversals = _back(p, lines)
        out_now = sum(line.amount for line in paid_lines) - sum(line.amount for line in reversals)
        if out_now > 0:
            finding(
                ExceptionKind.PAID_NOT_RECORDED,
                p.asset,
                out_now,
                [*paid_lines, *reversals],
                f"the provider paid a payout we hold as {p.state}",
            )
    if found:
        out.findings.extend(beyond(found, chains))
    elif paid_here and paid_lines:
        out.matched += 1


def _back(p: OurPayout, lines: Mapping[LineKind, list[StatementLine]]) -> list[StatementLine]:
    """What came back for a payout: reversals in its own asset only (money in another asset, sent by anyone with the
    payout's reference, gives nothing of this payout back)."""
    return [line for line in lines.get(LineKind.REVERSAL, []) if line.asset == p.asset]


def _paid(
    p: OurPayout,
    paid_lines: Sequence[StatementLine],
    lines: Mapping[LineKind, list[StatementLine]],
    chains: Chains,
    finding: _Found,
    *,
    missing: bool,
) -> None:
    """A payout we hold paid (or paid, then returned): its first payment of its amount, asset and destination
    (`missing`: none is a difference), nothing paid again or given back that no exception holds, and its fees. One
    payment listed late, far from the window it was paid in, is its payment: a duplicate is a second one."""
    reversals = _back(p, lines)
    fees = lines.get(LineKind.FEE, [])
    if paid_lines:
        _first_line(p, paid_lines[0], finding)
    elif missing:
        finding(ExceptionKind.MISSING, p.asset, p.amount, (), "paid here; the provider has no payout for it")
    if p.state == "paid":
        _again_or_back(p, paid_lines, reversals, fees, chains, finding)
    elif paid_lines and (kept := sum(line.amount for line in paid_lines) - sum(line.amount for line in reversals)) > 0:
        finding(
            ExceptionKind.PAID_NOT_RECORDED,
            p.asset,
            kept,
            [*paid_lines, *reversals],
            "we hold this payout returned (the player credited back), but the provider paid it and nothing came back",
        )
    if len(paid_lines) <= 1:
        _fees(p, fees, finding)
    else:
        # Paid more than once: the fees in the payout's asset are in the duplicate's amount (`_again_or_back`); those
        # in another (a chain's network fee) are fees no book holds, each asset's its own finding.
        _fees(p, [line for line in fees if line.asset != p.asset], finding)


def _learn_fee(
    p: OurPayout,
    paid_lines: Sequence[StatementLine],
    fees: Sequence[StatementLine],
    chains: Chains,
    out: Outcome,
) -> OurPayout:
    """A payout whose fee no answer of the provider carried yet (paid by a webhook that names none), paid once, its
    fee lines all in the payout's own asset: the statement is the provider's first answer with the fee, and the
    payout records it (`out.fees_learned`) as its status would have; matched as recorded, so nothing is raised for
    it. Never where an exception was already found about its fee (booked by two people, or open: recording it too
    would count it twice), nor in another asset (a chain's network fee is a finding). A payout that recorded a fee
    (0 included) is held to it: anything beyond is an unbooked fee."""
    if p.fee_amount is not None or p.fee_asset is not None or len(paid_lines) > 1 or not fees:
        return p
    if {line.asset for line in fees} != {p.asset}:
        return p
    asset = p.asset
    if (ExceptionKind.UNBOOKED_FEE, f"payout:{p.payout_id}:{asset}") in chains:
        return p
    amount = sum(line.amount for line in fees)
    out.fees_learned.append((p.payout_id, asset, amount))
    return replace(p, fee_asset=asset, fee_amount=amount)


def _again_or_back(  # noqa: PLR0917 - the payout's history and what was found about it
    p: OurPayout,
    paid_lines: Sequence[StatementLine],
    reversals: Sequence[StatementLine],
    fees: Sequence[StatementLine],
    chains: Chains,
    finding: _Found,
) -> None:
    """Money that moved on a payout held paid after its payment: paid again (with the fees of the extra payments),
    or given back, net of each other. A reversal first takes back what was paid beyond the payout and no exception
    holds yet (a duplicate the provider recovered), then the payout itself; once a duplicate was found, money coming
    back is a reversal of its own (the duplicate's exception stays what it was). Each is the chain's whole amount:
    `_beyond` keeps what is new."""
    subject = f"payout:{p.payout_id}"
    again_raised = _raised(chains, ExceptionKind.DUPLICATE, subject)
    back_raised = _raised(chains, ExceptionKind.UNRECORDED_REVERSAL, subject)
    extra = sum(line.amount for line in paid_lines[1:])
    if extra:
        unbooked = _unbooked(p, fees).get(p.asset, 0)
        extra_fees = max(unbooked - _raised(chains, ExceptionKind.UNBOOKED_FEE, f"{subject}:{p.asset}"), 0)
    else:
        extra_fees = 0
    back = sum(line.amount for line in reversals)
    again = extra + extra_fees - max(back - back_raised, 0)
    returned = back - max(extra + extra_fees - again_raised, 0)
    if again > 0:
        finding(
            ExceptionKind.DUPLICATE,
            p.asset,
            again,
            [*paid_lines, *(fees if extra_fees else ()), *reversals],
            f"the provider paid this payout {len(paid_lines)} times"
            + (f" and gave {back} {p.asset} back" if back else "")
            + (f", and charged {extra_fees} {p.asset} more in fees" if extra_fees else ""),
        )
    if returned > 0:
        finding(
            ExceptionKind.UNRECORDED_REVERSAL,
            p.asset,
            returned,
            [*reversals, *(paid_lines if extra else ())],
            "the provider gave this payout back; we still hold it paid"
            + (f" (it paid it {len(paid_lines)} times: the first payment may still stand)" if extra else ""),
        )


def _first_line(p: OurPayout, first: StatementLine, finding: _Found) -> None:
    """The provider's payment of a payout: paid elsewhere (one finding, whatever its amount), or more than the payout
    (money out that Prizeflow did not send: it pages), or less or another asset."""
    if first.destination is not None and first.destination != p.destination:
        over = first.amount - p.amount if first.asset == p.asset else first.amount
        finding(
            ExceptionKind.DESTINATION_MISMATCH,
            first.asset,
            max(over, 0),
            (first,),
            f"the provider paid {first.amount} {first.asset} to another destination than our payout's; the difference "
            "over what the ledger booked is what a write-off books (returning the payout credits the player back)",
        )
    elif first.asset == p.asset and first.amount > p.amount:
        finding(
            ExceptionKind.OVERPAID,
            first.asset,
            first.amount - p.amount,
            (first,),
            f"the provider paid {first.amount} {first.asset}, our payout is {p.amount} {p.asset}",
        )
    elif (first.asset, first.amount) != (p.asset, p.amount):
        finding(
            ExceptionKind.AMOUNT_MISMATCH,
            first.asset,
            abs(first.amount - p.amount) if first.asset == p.asset else first.amount,
            (first,),
            f"the provider paid {first.amount} {first.asset}, our payout is {p.amount} {p.asset}",
        )


def _ledger(p: OurPayout, finding: _Found) -> None:
    """What the ledger booked for a payout paid in the window: its amount while paid, nothing once returned. No
    posting at all is not judged (rewards may not have applied the outcome yet; one it refuses is a dead letter)."""
    if p.ledger is None:
        return
    expected = p.amount if p.state == "paid" else 0
    if p.ledger != expected:
        finding(
            ExceptionKind.LEDGER_MISMATCH,
            p.asset,
            abs(expected - p.ledger),
            (),
            f"the payout is {p.state} ({p.amount} {p.asset}); the ledger booked {p.ledger} on the rail's account",
        )


class _Found(Protocol):
    def __call__(
        self,
        kind: ExceptionKind,
        asset: str | None,
        amount: int | None,
        theirs: Sequence[StatementLine],
        detail: str,
        *,
        about: str = ...,
    ) -> None: ...


def _unbooked(p: OurPayout, fees: Sequence[StatementLine]) -> dict[str, int]:
    """Per asset, the fees charged on a payout beyond what it recorded (nothing where none is beyond)."""
    charged: dict[str, int] = defaultdict(int)
    for line in fees:
        charged[line.asset] += line.amount
    return {
        asset: amount - booked
        for asset, amount in charged.items()
        if amount > (booked := (p.fee_amount or 0) if p.fee_asset == asset else 0)
    }


def _fees(p: OurPayout, fees: Sequence[StatementLine], finding: _Found) -> None:
    """Fees the provider charged on a payout beyond the fee it recorded (the provider's own answer, kept as the
    payout's fee): one finding per asset charged, for the chain's whole amount, so what exceptions found before (a
    fee booked, or acknowledged) is subtracted by `_beyond` and never booked twice."""
    for asset, unbooked in sorted(_unbooked(p, fees).items()):
        recorded = (p.fee_amount or 0) if p.fee_asset == asset else 0
        finding(
            ExceptionKind.UNBOOKED_FEE,
            asset,
            unbooked,
            [line for line in fees if line.asset == asset],
            f"the provider charged {unbooked + recorded} {asset} in fees on this payout; {recorded} was recorded "
            "with it",
            about=f"payout:{p.payout_id}:{asset}",
        )


__all__ = [
    "NEVER_PAID_STATES",
    "PAID_STATES",
    "Chain",
    "Chains",
    "Finding",
    "LineKind",
    "OurPayout",
    "Outcome",
    "Totals",
    "reconcile",
    "stray_subjects",
]
