"""Reconciliation: our payouts against a provider's statement, line by line (docs/adr/0011-reconciliation.md).

Pure rules, no I/O. `reconcile` matches a window's statement lines to payouts by the identifiers the rails carry
(our idempotency key or payout id as `reference`, the provider's own reference as `provider_ref`) and names every
difference as a `Finding` with a natural key (kind, subject): the same difference found by two runs is one
exception. An exception's life is the `TRANSITIONS` table; nothing else decides what may follow what.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

from prizeflow_contracts.providers import StatementLine, StatementLineKind

LineKind = StatementLineKind


class ExceptionKind(StrEnum):
    UNREQUESTED = "unrequested"  # money left at the provider for no payout of ours
    DUPLICATE = "duplicate"  # one payout of ours paid more than once
    DESTINATION_MISMATCH = "destination_mismatch"  # paid somewhere else than our payout says
    PAID_NOT_RECORDED = "paid_not_recorded"  # paid at the provider, failed/cancelled/rejected here
    OVERPAID = "overpaid"  # the provider paid more than our payout: money out that Prizeflow did not send
    AMOUNT_MISMATCH = "amount_mismatch"  # less than our payout, or another asset
    MISSING = "missing"  # paid here, nothing at the provider
    UNRECORDED_REVERSAL = "unrecorded_reversal"  # the provider gave it back, we still hold it paid
    UNMATCHED_CREDIT = "unmatched_credit"  # money came back for no payout of ours
    UNBOOKED_FEE = "unbooked_fee"  # a fee the provider charged that nobody booked
    UNKNOWN_OUTCOME = "unknown_outcome"  # a rail cannot tell whether it paid: a person settles it
    LEDGER_MISMATCH = "ledger_mismatch"  # the ledger booked another amount for the payout than it paid, or none


class Severity(StrEnum):
    CRITICAL = "critical"  # pages at once: money left that Prizeflow did not send
    HIGH = "high"
    MEDIUM = "medium"


SEVERITY: Final[Mapping[ExceptionKind, Severity]] = {
    ExceptionKind.UNREQUESTED: Severity.CRITICAL,
    ExceptionKind.DUPLICATE: Severity.CRITICAL,
    ExceptionKind.DESTINATION_MISMATCH: Severity.CRITICAL,
    ExceptionKind.PAID_NOT_RECORDED: Severity.CRITICAL,
    ExceptionKind.OVERPAID: Severity.CRITICAL,
    ExceptionKind.AMOUNT_MISMATCH: Severity.HIGH,
    ExceptionKind.MISSING: Severity.HIGH,
    ExceptionKind.UNRECORDED_REVERSAL: Severity.HIGH,
    ExceptionKind.UNKNOWN_OUTCOME: Severity.HIGH,
    ExceptionKind.LEDGER_MISMATCH: Severity.HIGH,
    ExceptionKind.UNMATCHED_CREDIT: Severity.MEDIUM,
    ExceptionKind.UNBOOKED_FEE: Severity.MEDIUM,
}

# Money that left the platform at the provider without Prizeflow sending it: these page.
UNMATCHED_DEBITS: Final = frozenset(k for k, s in SEVERITY.items() if s is Severity.CRITICAL)


class Action(StrEnum):
    ACKNOWLEDGE = "acknowledge"  # on record with a reason; moves no money (one person)
    WRITE_OFF = "write_off"  # book the money the provider let out as a loss: treasury → the rail's account
    BOOK_FEE = "book_fee"  # book the provider's fee: treasury → the rail's account
    MARK_RETURNED = "mark_returned"  # the payout did not reach the player: paid → returned, the wallet credited back
    SETTLE_FOUND = "settle_found"  # an unknown outcome was made: record the provider's id, the sync settles it
    SETTLE_NOT_MADE = "settle_not_made"  # an unknown outcome was never made: free it to be asked for again


MONEY_ACTIONS: Final = frozenset(
    {Action.WRITE_OFF, Action.BOOK_FEE, Action.MARK_RETURNED, Action.SETTLE_FOUND, Action.SETTLE_NOT_MADE}
)

ACTIONS: Final[Mapping[ExceptionKind, tuple[Action, ...]]] = {
    ExceptionKind.UNREQUESTED: (Action.ACKNOWLEDGE, Action.WRITE_OFF),
    ExceptionKind.DUPLICATE: (Action.ACKNOWLEDGE, Action.WRITE_OFF),
    ExceptionKind.DESTINATION_MISMATCH: (Action.ACKNOWLEDGE, Action.WRITE_OFF, Action.MARK_RETURNED),
    ExceptionKind.PAID_NOT_RECORDED: (Action.ACKNOWLEDGE, Action.WRITE_OFF),
    ExceptionKind.OVERPAID: (Action.ACKNOWLEDGE, Action.WRITE_OFF),
    # Less than the payout: nothing left the platform to write off; a person settles it with the player.
    ExceptionKind.AMOUNT_MISMATCH: (Action.ACKNOWLEDGE,),
    ExceptionKind.MISSING: (Action.ACKNOWLEDGE, Action.MARK_RETURNED),
    ExceptionKind.UNRECORDED_REVERSAL: (Action.ACKNOWLEDGE, Action.MARK_RETURNED),
    ExceptionKind.UNMATCHED_CREDIT: (Action.ACKNOWLEDGE,),
    ExceptionKind.UNBOOKED_FEE: (Action.ACKNOWLEDGE, Action.BOOK_FEE),
    # Acknowledge: the rail's own sync settled it meanwhile (the payout's state says so).
    ExceptionKind.UNKNOWN_OUTCOME: (Action.ACKNOWLEDGE, Action.SETTLE_FOUND, Action.SETTLE_NOT_MADE),
    # The ledger is corrected by a ledger correction (two people, in rewards); the exception records what was done.
    ExceptionKind.LEDGER_MISMATCH: (Action.ACKNOWLEDGE,),
}


class ExceptionState(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"


TRANSITIONS: Final[Mapping[ExceptionState, frozenset[ExceptionState]]] = {
    ExceptionState.OPEN: frozenset({ExceptionState.INVESTIGATING, ExceptionState.RESOLVED}),
    ExceptionState.INVESTIGATING: frozenset({ExceptionState.INVESTIGATING, ExceptionState.RESOLVED}),
    ExceptionState.RESOLVED: frozenset(),
}


def may_move(current: ExceptionState, to: ExceptionState) -> bool:
    return to in TRANSITIONS[current]


# States of a payout as reconciliation reads them.
PAID_STATES: Final = frozenset({"paid", "returned"})
NEVER_PAID_STATES: Final = frozenset({"failed", "cancelled", "rejected"})


@dataclass(frozen=True, slots=True)
class OurPayout:
    """A payout of ours as reconciliation compares it (`returned_at` only for a returned one)."""

    payout_id: str
    idempotency_key: str
    provider_ref: str | None
    state: str
    asset: str
    amount: int
    destination: str
    fee_asset: str | None = None
    fee_amount: int | None = None
    paid_at: datetime | None = None
    unknown_outcome: bool = False  # a person must settle whether the provider made it
    # What the ledger booked for it on the rail's account (paid less returned); None: unchecked, or nothing yet.
    ledger: int | None = None
    unknown_since: datetime | None = None  # when its outcome became unknown (one exception per time it does)


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference. `subject` is what it is about (`payout:<id>` or `line:<line id>`), unique per kind."""

    kind: ExceptionKind
    subject: str
    asset: str | None
    amount: int | None  # the money at stake, in minor units (positive)
    ours: OurPayout | None
    theirs: tuple[StatementLine, ...]
    detail: str

    @property
    def payout_id(self) -> str | None:
        return self.ours.payout_id if self.ours is not None else None

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


@dataclass(slots=True)
class Totals:
    """One asset's money over the window, in minor units: ours paid, theirs paid out, their fees and reversals,
    and the provider balance's net movement (out: payouts + fees + other, less reversals)."""

    ours_paid: int = 0
    ledger: int | None = None  # what the ledger booked for our payouts of the window and its adjustments
    theirs_paid: int = 0
    fees: int = 0
    reversals: int = 0
    other: int = 0
    fees_inside: bool = False  # the rail's payout lines already hold its fees (the exchange's gross withdrawals)

    @property
    def provider_movement(self) -> int:
        fees = 0 if self.fees_inside else self.fees
        return self.theirs_paid + fees + self.other - self.reversals


@dataclass(slots=True)
class Outcome:
    findings: list[Finding] = field(default_factory=list)
    matched: int = 0
    lines: int = 0
    totals: dict[str, Totals] = field(default_factory=lambda: defaultdict(Totals))
    # Every line that names one of our payouts, with its payout: remembered, so a later run of another window sees
    # the payout's whole history (paid again later, paid while in flight and failed here since, paid before we knew).
    named: list[tuple[str, StatementLine]] = field(default_factory=list)


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

    def find(self, line: StatementLine) -> OurPayout | None:
        if line.reference is not None and (p := self.by_key.get(line.reference)) is not None:
            return p
        if line.provider_ref is not None:
            return self.by_ref.get(line.provider_ref)
        return None


def _within(at: datetime | None, since: datetime, until: datetime) -> bool:
    return at is not None and since <= at < until


def reconcile(
    lines: Sequence[StatementLine],
    payouts: Iterable[OurPayout],
    *,
    since: datetime,
    until: datetime,
    adjustments: Mapping[str, int] | None = None,
    fees_inside: bool = False,
) -> Outcome:
    """Match a statement to our payouts for the window [since, until).

    `lines` are the statement's (they may reach past the window on both sides, and hold what earlier runs remembered
    of the payouts they name) (a payout paid at 10:59:59 may be listed at 11:00:01): they
    match our payouts, but only lines inside the window can be found unrequested, and only payouts paid inside
    it can be found missing. `payouts` are ours paid in the window, plus any a line names, plus those whose
    outcome is unknown. `adjustments`: per asset, what the ledger booked for this provider's resolved exceptions in
    the window (None: the ledger is not compared). `fees_inside`: the rail's payout lines hold its fees (the fee
    lines say what part of them the provider kept), so they are not money out a second time."""
    out = Outcome()
    out.totals = defaultdict(lambda: Totals(fees_inside=fees_inside))
    ours = list(payouts)
    index = _Index(ours)
    by_payout: dict[str, dict[LineKind, list[StatementLine]]] = defaultdict(lambda: defaultdict(list))
    for line in lines:
        payout = index.find(line)
        if payout is not None:
            by_payout[payout.payout_id][line.kind].append(line)
            out.named.append((payout.payout_id, line))
        elif _within(line.occurred_at, since, until):
            _counted(out, line)
            _stray(out, line)
    if adjustments is not None:
        for asset, amount in adjustments.items():
            out.totals[asset].ledger = amount
    for payout in sorted(ours, key=lambda p: p.payout_id):
        mine = by_payout.get(payout.payout_id, {})
        paid_here = _within(payout.paid_at, since, until) and payout.state in PAID_STATES
        # A payout's lines count in the window it was paid in, wherever the provider dates them (a transfer made at
        # 10:59:58 and paid at 11:00:01 is the 11:00 window's on both sides); a payout not paid, by their own dates.
        for kind_lines in mine.values():
            for line in kind_lines:
                if paid_here or (payout.paid_at is None and _within(line.occurred_at, since, until)):
                    _counted(out, line)
        if paid_here:
            totals = out.totals[payout.asset]
            totals.ours_paid += payout.amount
            if adjustments is not None:
                totals.ledger = (totals.ledger or 0) + (payout.ledger or 0)
        _check(out, payout, mine, since=since, until=until)
    return out


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
    else:
        totals.other += line.amount


def _stray(out: Outcome, line: StatementLine) -> None:
    """A line inside the window that names no payout of ours."""
    subject = f"line:{line.line_id}"
    if line.kind is LineKind.PAYOUT:
        out.findings.append(
            Finding(
                ExceptionKind.UNREQUESTED,
                subject,
                line.asset,
                line.amount,
                None,
                (line,),
                "the provider paid money out that matches no payout of ours",
            )
        )
    elif line.kind is LineKind.FEE:
        out.findings.append(
            Finding(
                ExceptionKind.UNBOOKED_FEE,
                subject,
                line.asset,
                line.amount,
                None,
                (line,),
                "the provider charged a fee that belongs to no payout of ours",
            )
        )
    elif line.kind is LineKind.REVERSAL:
        out.findings.append(
            Finding(
                ExceptionKind.UNMATCHED_CREDIT,
                subject,
                line.asset,
                line.amount,
                None,
                (line,),
                "money came back at the provider for no payout of ours",
            )
        )


def _check(
    out: Outcome,
    p: OurPayout,
    lines: Mapping[LineKind, list[StatementLine]],
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

    paid_here = p.state in PAID_STATES and _within(p.paid_at, since, until)
    inside = [line for line in paid_lines if _within(line.occurred_at, since, until)]
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
    elif paid_here:
        # Reconciled whole by the run of the window it was paid in, with every line the run read for it.
        _paid(p, paid_lines, lines, finding, since=since, until=until)
        if len(paid_lines) <= 1:
            _fees(p, lines.get(LineKind.FEE, []), finding)
    elif p.state in PAID_STATES:
        _paid_elsewhere(p, paid_lines, inside, lines, finding, since=since, until=until)
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
        out.findings.extend(found)
    elif paid_here and paid_lines:
        out.matched += 1


def _paid_elsewhere(
    p: OurPayout,
    paid_lines: Sequence[StatementLine],
    inside: Sequence[StatementLine],
    lines: Mapping[LineKind, list[StatementLine]],
    finding: _Found,
    *,
    since: datetime,
    until: datetime,
) -> None:
    """A payout paid in another window that this window's lines name: reconciled by that window's run, except
    what happens later: paid again (a duplicate listed now), or given back (a late reversal)."""
    assert p.paid_at is not None
    read_from, read_to = since - (until - since), until + (until - since)  # far from this window: not its edge
    far = not read_from <= p.paid_at < read_to
    if inside and (len(paid_lines) > 1 or far):
        finding(
            ExceptionKind.DUPLICATE,
            p.asset,
            sum(line.amount for line in paid_lines[1:]) if len(paid_lines) > 1 else sum(line.amount for line in inside),
            paid_lines,
            "the provider paid this payout again, after the window it was paid in",
        )
    late = [line for line in _back(p, lines) if _within(line.occurred_at, since, until)]
    if late and p.state == "paid":
        finding(
            ExceptionKind.UNRECORDED_REVERSAL,
            p.asset,
            sum(line.amount for line in late),
            late,
            "the provider gave this payout back after the window it was paid in; we still hold it paid",
        )


def _back(p: OurPayout, lines: Mapping[LineKind, list[StatementLine]]) -> list[StatementLine]:
    """What came back for a payout: reversals in its own asset only (money in another asset, sent by anyone with the
    payout's reference, gives nothing of this payout back)."""
    return [line for line in lines.get(LineKind.REVERSAL, []) if line.asset == p.asset]


def _paid(
    p: OurPayout,
    paid_lines: Sequence[StatementLine],
    lines: Mapping[LineKind, list[StatementLine]],
    finding: _Found,
    *,
    since: datetime,
    until: datetime,
) -> None:
    """A payout we hold paid (or paid, then returned): one payout line of its amount, asset and destination, what
    the ledger booked for it, and nothing given back we do not know of. A reversal first takes back the provider's
    extra payments (a duplicate it recovered), then the payout itself."""
    reversals = _back(p, lines)
    back = sum(line.amount for line in reversals)
    extra = sum(line.amount for line in paid_lines[1:])
    recovered = min(back, extra)
    if extra - recovered > 0:
        fees = lines.get(LineKind.FEE, [])
        extra_fees = _unbooked(p, fees).get(p.asset, 0)
        finding(
            ExceptionKind.DUPLICATE,
            p.asset,
            extra - recovered + extra_fees,
            [*paid_lines, *fees, *reversals],
            f"the provider paid this payout {len(paid_lines)} times"
            + (f" and took {recovered} {p.asset} back" if recovered else "")
            + (f", and charged {extra_fees} {p.asset} more in fees" if extra_fees else ""),
        )
    if not paid_lines:
        if _within(p.paid_at, since, until):
            finding(ExceptionKind.MISSING, p.asset, p.amount, (), "paid here; the provider has no payout for it")
    else:
        _first_line(p, paid_lines[0], finding)
    _ledger(p, finding)
    returned_back = back - recovered
    if returned_back > 0 and p.state == "paid":
        finding(
            ExceptionKind.UNRECORDED_REVERSAL,
            p.asset,
            returned_back,
            reversals,
            "the provider gave this payout back; we still hold it paid",
        )
    if p.state == "returned" and paid_lines and sum(line.amount for line in paid_lines) - back > 0:
        finding(
            ExceptionKind.PAID_NOT_RECORDED,
            p.asset,
            sum(line.amount for line in paid_lines) - back,
            [*paid_lines, *reversals],
            "we hold this payout returned (the player credited back), but the provider paid it and nothing came back",
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
    """Fees the provider charged on a payout beyond what the payout recorded (the provider's own answer, kept as
    the payout's fee): one finding per asset charged."""
    for asset, unbooked in sorted(_unbooked(p, fees).items()):
        amount = unbooked + ((p.fee_amount or 0) if p.fee_asset == asset else 0)
        booked = amount - unbooked
        if unbooked:
            finding(
                ExceptionKind.UNBOOKED_FEE,
                asset,
                unbooked,
                [line for line in fees if line.asset == asset],
                f"the provider charged {amount} {asset} in fees on this payout; {booked} was booked",
                about=f"payout:{p.payout_id}:{asset}",
            )
