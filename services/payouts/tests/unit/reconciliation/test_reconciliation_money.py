"""Reconciliation's findings are about money, not keys (issue 43): each movement the books have not absorbed is a new
finding for exactly the unabsorbed amount, however often the provider moves money on one payout and whatever people
did with what was found before; a late listing is a payout's payment, not a second one.

The property runs the pure rules (`reconcile`) over a payout's life at its provider, run after run, with an exception
queue in memory kept as PostgreSQL keeps it (one exception per natural key, each link of a chain claiming exactly what
the links before it do not, migration 0024), and people resolving what was found, and holds that the provider's money
equals the books' plus what is still open, after every step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_reconciliation.domain import (
    Chain,
    ExceptionKind,
    Finding,
    OurPayout,
    Outcome,
    reconcile,
)

K = ExceptionKind
L = StatementLineKind
HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 25, 10, tzinfo=UTC)  # window k is [T0 + k h, T0 + (k + 1) h); the payout is paid in window 0
AMOUNT = 10_000
# Which way an open finding's money goes: more out at the provider than the books hold (+), or less (-).
SIGN = {K.DUPLICATE: 1, K.UNBOOKED_FEE: 1, K.UNRECORDED_REVERSAL: -1, K.MISSING: -1}


def _payout(fee: int | None = 0) -> OurPayout:
    return OurPayout(
        "po-1",
        "key-1",
        "tr_1",
        "paid",
        "USD",
        AMOUNT,
        "acct_1",
        fee_asset="USD" if fee is not None else None,
        fee_amount=fee,
        paid_at=T0 + 10 * timedelta(minutes=1),
    )


@dataclass
class _Exception:
    finding: Finding
    state: str = "open"
    resolution: str | None = None


@dataclass
class _Queue:
    """The exception queue as PostgreSQL keeps it: a finding whose key is known is nothing; a new link must claim
    exactly what its chain does not hold (0024's trigger); the run closes a `missing` the provider now lists."""

    exceptions: list[_Exception] = field(default_factory=list)

    def chains(self) -> dict[tuple[ExceptionKind, str], Chain]:
        out: dict[tuple[ExceptionKind, str], Chain] = {}
        for e in self.exceptions:
            f = e.finding
            was = out.get((f.kind, f.subject), Chain(0, 0))
            out[(f.kind, f.subject)] = Chain(was.links + 1, was.amount + (f.amount or 0))
        return out

    def open(self, outcome: Outcome) -> None:
        keys = {(e.finding.kind, e.finding.key) for e in self.exceptions}
        for f in outcome.findings:
            if (f.kind, f.key) in keys:
                continue
            chain = self.chains().get((f.kind, f.subject), Chain(0, 0))
            assert (f.link, f.absorbed) == (chain.links, chain.amount), f
            assert f.link == 0 or (f.amount or 0) > 0, f
            self.exceptions.append(_Exception(f))
        for kind, subject in outcome.answered:
            for e in self.unresolved():
                if (e.finding.kind, e.finding.subject) == (kind, subject):
                    e.state, e.resolution = "resolved", "acknowledge"

    def unresolved(self) -> list[_Exception]:
        return [e for e in self.exceptions if e.state != "resolved"]


@dataclass
class _World:
    """One payout: what the provider listed, what the books hold, what was found."""

    fee: int | None  # None: no answer of the provider carried the payout's fee yet (the statement's first one does)
    lines: list[StatementLine] = field(default_factory=list)
    queue: _Queue = field(default_factory=_Queue)
    adjusted: int = 0  # written off, fees booked, and people's corrections of what they acknowledged
    window: int = 0
    n: int = 0

    def at(self) -> datetime:
        return T0 + self.window * HOUR + 30 * timedelta(minutes=1)

    def add(self, kind: StatementLineKind, amount: int) -> None:
        self.n += 1
        self.lines.append(
            StatementLine(
                line_id=f"l-{self.n}",
                kind=kind,
                occurred_at=self.at(),
                asset="USD",
                amount=amount,
                reference="key-1",
                destination="acct_1" if kind is L.PAYOUT else None,
            )
        )

    def total(self, kind: StatementLineKind) -> int:
        return sum(line.amount for line in self.lines if line.kind is kind)

    def run(self, since: datetime, until: datetime) -> None:
        out = reconcile(list(self.lines), [_payout(self.fee)], since=since, until=until, chains=self.queue.chains())
        assert {f.kind for f in out.findings} <= set(SIGN), out.findings
        self.queue.open(out)
        for payout_id, asset, amount in out.fees_learned:  # recorded once, as the store does (fee IS NULL only)
            assert (payout_id, asset, self.fee) == ("po-1", "USD", None), out.fees_learned
            self.fee = amount

    def resolve(self, pick: int) -> None:
        """People resolve one open exception: a duplicate written off, a fee booked, a partial reversal
        acknowledged with what was done for it (a ledger correction of what came back). A `missing` is left to the
        run that finds the payment listed."""
        candidates = [e for e in self.queue.unresolved() if e.finding.kind is not K.MISSING]
        if not candidates:
            return
        e = candidates[pick % len(candidates)]
        amount = e.finding.amount or 0
        self.adjusted += SIGN[e.finding.kind] * amount
        e.state = "resolved"
        e.resolution = {K.DUPLICATE: "write_off", K.UNBOOKED_FEE: "book_fee"}.get(e.finding.kind, "acknowledge")

    def check(self) -> None:
        provider = self.total(L.PAYOUT) + self.total(L.FEE) - self.total(L.REVERSAL)
        ledger = AMOUNT + (self.fee or 0) + self.adjusted
        still_open = sum(SIGN[e.finding.kind] * (e.finding.amount or 0) for e in self.queue.unresolved())
        assert provider == ledger + still_open, (provider, ledger, still_open, self.queue.exceptions)
        if sum(1 for line in self.lines if line.kind is L.PAYOUT) <= 1:
            assert all(e.finding.kind is not K.DUPLICATE for e in self.queue.exceptions), "a single payment"


_steps = st.lists(
    st.one_of(
        st.just(("again", 0)),
        st.tuples(st.just("back"), st.integers(1, AMOUNT)),
        st.tuples(st.just("fee"), st.integers(1, 500)),
        st.tuples(st.just("fee_same_line"), st.integers(1, 500)),
        st.just(("late", 0)),
        st.just(("rerun", 0)),
        st.tuples(st.just("resolve"), st.integers(0, 10)),
    ),
    max_size=14,
)


@settings(max_examples=400, deadline=None)
@given(late=st.booleans(), fee=st.sampled_from([None, 0, 25]), steps=_steps)
def test_provider_money_is_the_books_plus_what_is_open_after_every_step(
    late: bool, fee: int | None, steps: list[tuple[str, int]]
) -> None:
    """Payments (one listed late, far from the window it was paid in, or not), payments again, partial reversals,
    fees charged on new lines or raised on the same one, overlapping runs, resolutions in any order; the payout's
    fee recorded by its paid answer (0 or not), or by none (the statement's first fee line records it)."""
    world = _World(fee=fee)
    if not late:
        world.add(L.PAYOUT, AMOUNT)
    if fee:
        world.add(L.FEE, fee)
    world.run(T0, T0 + HOUR)
    world.check()
    for step, value in steps:
        if step == "resolve":
            world.resolve(value)
            world.check()
            continue
        world.window += 1
        if step == "again":
            world.add(L.PAYOUT, AMOUNT)
        elif step == "back":
            left = world.total(L.PAYOUT) - world.total(L.REVERSAL)
            if left > 0:
                world.add(L.REVERSAL, min(value, left))
        elif step == "fee":
            world.add(L.FEE, value)
        elif step == "fee_same_line":
            # As Stripe shows a fee raised on a transaction: the same balance transaction's fee, now higher.
            fees = [i for i, line in enumerate(world.lines) if line.kind is L.FEE]
            if fees:
                i = fees[-1]
                world.lines[i] = world.lines[i].model_copy(update={"amount": world.lines[i].amount + value})
            else:
                world.add(L.FEE, value)
        elif step == "late" and not any(line.kind is L.PAYOUT for line in world.lines):
            world.add(L.PAYOUT, AMOUNT)
        if step == "rerun":
            world.run(T0, T0 + (world.window + 1) * HOUR)  # an overlapping window from the payout's own on
        else:
            world.run(T0 + world.window * HOUR, T0 + (world.window + 1) * HOUR)
        world.check()


# -- each defect of the issue, by hand ---------------------------------------------------------------------------------
def _line(line_id: str, kind: StatementLineKind, amount: int, hours: int) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=kind,
        occurred_at=T0 + hours * HOUR + 30 * timedelta(minutes=1),
        asset="USD",
        amount=amount,
        reference="key-1",
        destination="acct_1" if kind is L.PAYOUT else None,
    )


def _found(lines: list[StatementLine], hours: int, queue: _Queue, fee: int = 0) -> list[tuple[str, str, int, int]]:
    since = T0 + hours * HOUR
    out = reconcile(lines, [_payout(fee)], since=since, until=since + HOUR, chains=queue.chains())
    queue.open(out)
    return [(f.kind.value, f.key, f.amount or 0, f.absorbed) for f in out.findings]


def test_a_second_partial_reversal_is_found_for_what_came_back_since() -> None:
    """40 of 100 given back and acknowledged; the other 60 given back later: a new exception of 60."""
    queue = _Queue()
    lines = [_line("pay", L.PAYOUT, AMOUNT, 0), _line("back-1", L.REVERSAL, 4_000, 1)]
    assert _found(lines, 1, queue) == [("unrecorded_reversal", "payout:po-1", 4_000, 0)]
    queue.exceptions[0].state = "resolved"
    lines.append(_line("back-2", L.REVERSAL, 6_000, 2))
    assert _found(lines, 2, queue) == [("unrecorded_reversal", "payout:po-1#1", 6_000, 4_000)]
    assert _found(lines, 2, queue) == []  # found once


def test_a_fee_raised_after_it_was_booked_is_found_for_the_rise_only() -> None:
    """30 booked, then the provider's fee is 50 on the same line: 20 more, never the 30 again; a fee the payout
    recorded with it (the provider's own answer) is not the books' to book."""
    queue = _Queue()
    fee = _line("pay:fee", L.FEE, 30, 0)
    lines = [_line("pay", L.PAYOUT, AMOUNT, 0), fee]
    assert _found(lines, 0, queue) == [("unbooked_fee", "payout:po-1:USD", 30, 0)]
    queue.exceptions[0].state = "resolved"
    lines[1] = fee.model_copy(update={"amount": 50})
    assert _found(lines, 0, queue) == [("unbooked_fee", "payout:po-1:USD#1", 20, 30)]
    recorded = _Queue()
    assert _found(lines, 0, recorded, fee=45) == [("unbooked_fee", "payout:po-1:USD", 5, 0)]


def test_a_third_payment_after_a_duplicate_was_written_off_is_found_for_itself() -> None:
    queue = _Queue()
    lines = [_line("pay", L.PAYOUT, AMOUNT, 0), _line("pay-2", L.PAYOUT, AMOUNT, 0)]
    assert _found(lines, 0, queue) == [("duplicate", "payout:po-1", AMOUNT, 0)]
    queue.exceptions[0].state = "resolved"
    lines.append(_line("pay-3", L.PAYOUT, AMOUNT, 3))
    assert _found(lines, 3, queue) == [("duplicate", "payout:po-1#1", AMOUNT, AMOUNT)]


def test_the_only_payment_listed_late_is_no_duplicate_and_answers_missing() -> None:
    """Paid in window 0, listed by the provider three days later: missing in its own window, then its payment
    (the run closes the missing exception); a second payment after that is a duplicate."""
    queue = _Queue()
    assert _found([], 0, queue) == [("missing", "payout:po-1", AMOUNT, 0)]
    lines = [_line("late", L.PAYOUT, AMOUNT, 72)]
    assert _found(lines, 72, queue) == []
    assert [(e.finding.kind, e.state) for e in queue.exceptions] == [(K.MISSING, "resolved")]
    lines.append(_line("again", L.PAYOUT, AMOUNT, 73))
    assert _found(lines, 73, queue) == [("duplicate", "payout:po-1", AMOUNT, 0)]


def test_money_taken_back_after_a_duplicate_was_found_is_a_reversal_of_its_own() -> None:
    """The duplicate's exception stays what it was; what came back since is found as such, with the payments as
    evidence (both exceptions together say: nothing is out beyond the payout)."""
    queue = _Queue()
    lines = [_line("pay", L.PAYOUT, AMOUNT, 0), _line("pay-2", L.PAYOUT, AMOUNT, 0)]
    assert _found(lines, 0, queue) == [("duplicate", "payout:po-1", AMOUNT, 0)]
    lines.append(_line("back", L.REVERSAL, AMOUNT, 1))
    out = reconcile(lines, [_payout()], since=T0 + HOUR, until=T0 + 2 * HOUR, chains=queue.chains())
    assert [(f.kind, f.amount) for f in out.findings] == [(K.UNRECORDED_REVERSAL, AMOUNT)]
    assert [line.line_id for line in out.findings[0].theirs] == ["back", "pay", "pay-2"]
