"""Adversarial review of reconciliation (issue 34): each test names a way to make the platform pay wrongly or make
reconciliation lie. A test marked `xfail(strict=True)` proves a defect still in the product code: it fails today
and must pass once the defect is fixed (then drop the mark)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.payouts import (
    ApprovalPolicy,
    LedgerPosted,
    LedgerPostingKind,
    PayoutReturned,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    ProviderType,
    StatementLine,
    StatementLineKind,
    StatementPage,
)
from prizeflow_payouts.application.recon_returns import ReturnPaidPayouts
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.domain.payout import Change, Payout
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_payouts.entrypoints.kafka import PayoutRequestsHandler
from prizeflow_reconciliation.application.books import ReconciliationStores
from prizeflow_reconciliation.application.ports import Actor, ReconException, Resolution, Run
from prizeflow_reconciliation.application.queue import ExceptionQueue
from prizeflow_reconciliation.application.runs import ReconcileWindows, ReconGauges
from prizeflow_reconciliation.domain import (
    ACTIONS,
    Action,
    ExceptionKind,
    ExceptionState,
    OurPayout,
    reconcile,
)
from prizeflow_reconciliation.statements import RailStatement, ReconError, Statements

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
ALICE = Actor("alice", frozenset({"ops"}), "corr-a")
BOB = Actor("bob", frozenset({"approver"}), "corr-b")


# -- fakes ----------------------------------------------------------------------------------------------------------
def _payout(amount: int = 1_000, state: PayoutState = PayoutState.PAID) -> Payout:
    return Payout(
        id="pay-1",
        payout_request_id="req-1",
        idempotency_key="key-1",
        request_hash="h",
        claim_id="claim-1",
        player_id="player-1",
        requested_by="rewards",
        asset="USDC",
        amount=amount,
        destination_type="crypto_address",
        destination_address="GDEST",
        destination_memo=None,
        provider_type="crypto_exchange",
        provider_name="exchange",
        state=state,
        approval_policy=ApprovalPolicy.AUTO,
        correlation_id="corr-1",
        cause_event_id=None,
        attempts=1,
        max_attempts=5,
        sync_first=False,
        sync_polls=0,
        provider_ref="wd-1",
        tx_hash=None,
        last_error_code=None,
        created_at=NOW - timedelta(days=1),
    )


@dataclass
class _Payouts:
    record: Payout
    applied: list[Change] = field(default_factory=list)

    async def get(self, payout_id: str, *, for_update: bool = False) -> Payout | None:
        return self.record if payout_id == self.record.id else None

    async def apply(self, changes: Sequence[Change], *, at: datetime) -> list[Change]:
        self.applied.extend(changes)
        self.record = replace(self.record, state=changes[-1].to)
        return list(changes)


@dataclass
class _Store:
    """Just enough of `RunStore` and `ExceptionStore` for the queue's decisions, in memory."""

    exc: ReconException
    payouts: Any
    events: list[Envelope[Any]] = field(default_factory=list)
    run: Run | None = None

    async def exception(self, exception_id: int, *, for_update: bool = False) -> ReconException | None:
        return self.exc if exception_id == self.exc.id else None

    async def propose(self, exception_id: int, proposal: Mapping[str, Any], at: datetime) -> None:
        self.exc = replace(self.exc, proposal=dict(proposal), state=ExceptionState.INVESTIGATING)

    async def resolve(self, exception_id: int, resolution: Resolution, at: datetime) -> None:
        self.exc = replace(self.exc, state=ExceptionState.RESOLVED)

    async def add_history(self, exception_id: int, actor: str, what: str, reason: str | None, at: datetime) -> None:
        return None

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        self.events.extend(events)

    async def open_summary(self) -> list[tuple[str, str, str, int, datetime]]:
        return []

    async def claim_run(self, run_id: str, provider: str, since: datetime, until: datetime, **_: Any) -> Run | None:
        # A completed run answers at once: what a window run too early leaves behind for good.
        self.run = Run(run_id, provider, since, until, "completed", None, fetched=True, pages=1)
        return self.run


@dataclass
class _Exchange:
    """A rail that settles unknown outcomes (the exchange), recording what it was told."""

    provider_type: ProviderType = ProviderType.CRYPTO_EXCHANGE
    settled: list[tuple[str, str | None, str]] = field(default_factory=list)

    async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None:
        self.settled.append((payout_id, found_ref, actor))

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        return StatementPage(lines=())


@dataclass
class _Recon:
    """Reconciliation's two halves, wired on one in-memory store as bootstrap wires them on PostgreSQL."""

    runs: ReconcileWindows
    queue: ExceptionQueue


def _wire(store: Any, rail: Any, *, settles: bool, clock: Any, ledger: bool = True) -> _Recon:
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())

    @asynccontextmanager
    async def tx() -> AsyncIterator[ReconciliationStores]:
        # The lifecycle's real `PayoutReturns` over the fake repository: a return goes through its transitions.
        yield ReconciliationStores(
            runs=store,
            exceptions=store,
            outbox=store,
            postings=store,
            payouts=ReturnPaidPayouts(store.payouts, builder),
        )

    def opener() -> AbstractAsyncContextManager[ReconciliationStores]:
        return tx()

    statements = Statements(
        [RailStatement("exchange", ProviderType.CRYPTO_EXCHANGE, reader=rail, settler=rail if settles else None)]
    )
    uow: Any = opener
    gauges = ReconGauges(uow)
    return _Recon(
        runs=ReconcileWindows(uow, statements, gauges, ledger=ledger, clock=clock),
        queue=ExceptionQueue(uow, statements, service="payouts", source="/prizeflow/payouts", clock=clock),
    )


def _recon(store: _Store, rail: _Exchange) -> _Recon:
    return _wire(store, rail, settles=True, clock=lambda: NOW)


def _exception(kind: ExceptionKind, amount: int) -> ReconException:
    return ReconException(
        id=7,
        provider="exchange",
        kind=kind,
        state=ExceptionState.OPEN,
        owner=None,
        payout_id="pay-1",
        asset="USDC",
        amount=amount,
        proposal=None,
        correlation_id="corr-1",
        player_id="player-1",
    )


# -- two people: the second may not decide alone what the first proposed ------------------------------------------
async def test_the_confirmer_cannot_swap_the_withdrawal_id_the_proposer_found() -> None:
    rail = _Exchange()
    store = _Store(_exception(ExceptionKind.UNKNOWN_OUTCOME, 1_000), _Payouts(_payout(state=PayoutState.SUBMITTING)))
    recon = _recon(store, rail)
    proposed = await recon.queue.resolve(7, ALICE, Action.SETTLE_FOUND, "found it", {"withdrawal_id": "wd-found"})
    assert proposed == "proposed"
    try:
        await recon.queue.resolve(7, BOB, Action.SETTLE_FOUND, "agreed", {"withdrawal_id": "wd-of-someone-else"})
    except ReconError:  # refusing a changed parameter is a fix too
        assert rail.settled == []
        return
    # Executed: it must be exactly what the first person proposed.
    assert rail.settled == [("pay-1", "wd-found", "bob")]


# -- a partial reversal must not credit the whole payout back ------------------------------------------------------
async def test_mark_returned_of_a_partial_reversal_credits_no_more_than_came_back() -> None:
    payouts = _Payouts(_payout(amount=1_000))
    # The provider gave back 100 of the 1000 it paid: the exception is about 100.
    store = _Store(_exception(ExceptionKind.UNRECORDED_REVERSAL, 100), payouts)
    recon = _recon(store, _Exchange())
    assert await recon.queue.resolve(7, ALICE, Action.MARK_RETURNED, "the provider reversed it") == "proposed"
    try:
        await recon.queue.resolve(7, BOB, Action.MARK_RETURNED, "agreed")
    except ReconError:
        assert payouts.applied == []  # refusing a partial return is a fix too
        return
    returned = [e.data for c in payouts.applied for e in c.events if isinstance(e.data, PayoutReturned)]
    assert returned, "the payout was returned without PayoutReturned"
    assert returned[0].returned_amount.amount <= 100


# -- a window run before its late lines can be listed --------------------------------------------------------------
async def test_a_window_is_not_reconciled_before_its_late_lines_are_listed() -> None:
    store = _Store(_exception(ExceptionKind.MISSING, 1), _Payouts(_payout()))
    recon = _recon(store, _Exchange())
    until = NOW - timedelta(seconds=1)  # ended one second ago; slack is 15 minutes
    with pytest.raises(ReconError) as refused:
        await recon.runs.run("exchange", until - timedelta(hours=1), until, requested_by="mallory")
    assert refused.value.code == "window_not_closed"


async def test_a_rail_that_lists_late_is_reconciled_that_much_later() -> None:
    """A rail whose statement lists a movement up to three hours late: its windows wait that long, the others'
    the schedule's slack (a window completed without its late lines would open findings for payouts it paid)."""
    late = RailStatement("late", ProviderType.FIAT_PROVIDER, reader=_Exchange(), lists_within=timedelta(hours=3))
    prompt = RailStatement("exchange", ProviderType.CRYPTO_EXCHANGE, reader=_Exchange())

    class Gauges:
        async def refresh(self) -> None:
            return None

    none: Any = None
    runs = ReconcileWindows(none, Statements([late, prompt]), Gauges(), clock=lambda: NOW)  # type: ignore[arg-type]
    until = NOW - timedelta(hours=1)  # long past the 15 minutes' slack, not past its three hours
    with pytest.raises(ReconError) as refused:
        await runs.run("late", until - timedelta(hours=1), until, requested_by="schedule")
    assert refused.value.code == "window_not_closed"
    assert runs.slack_of(late) == timedelta(hours=3)
    assert runs.slack_of(prompt) == timedelta(minutes=15)
    assert runs.due_window(runs.slack_of(late))[1] <= NOW - timedelta(hours=3)
    assert runs.due_window(runs.slack_of(prompt))[1] >= NOW - timedelta(hours=1)


# -- a second payment of a payout listed in a later window --------------------------------------------------------
def _line(line_id: str, at: datetime) -> StatementLine:
    return StatementLine(
        line_id=line_id,
        kind=StatementLineKind.PAYOUT,
        occurred_at=at,
        asset="USDC",
        amount=1_000,
        reference="key-1",
        destination="GDEST",
    )


def test_the_provider_paying_a_payout_again_hours_later_is_a_duplicate() -> None:
    """Fixed by e017450 (`_paid_elsewhere`): kept as a regression test."""
    paid_at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", None, "paid", "USDC", 1_000, "GDEST", paid_at=paid_at, ledger=1_000)
    first = reconcile(
        [_line("wd-a", paid_at)], [ours], since=paid_at.replace(minute=0), until=paid_at.replace(hour=11, minute=0)
    )
    assert (first.findings, first.matched) == ([], 1)  # the window it was paid in is clean
    # 14:30: the provider pays the same payout again. The run of 14:00-15:00 reads the payout (the line names it),
    # with the line the first run remembered.
    again = datetime(2026, 11, 25, 14, 30, tzinfo=UTC)
    later = reconcile(
        [_line("wd-a", paid_at), _line("wd-b", again)],
        [ours],
        since=again.replace(minute=0),
        until=again.replace(hour=15, minute=0),
    )
    assert [f.kind for f in later.findings] == [ExceptionKind.DUPLICATE]


# test_the_provider_paying_a_payout_again_in_the_next_window_is_a_duplicate:
# fixed by remembering every line that names a payout (recon_payout_lines), which no single
# reconcile() call can show: proven across two runs on real PostgreSQL in
# services/payouts/tests/integration/test_reconciliation_history.py


# -- what the ledger booked: only rewards may say it -----------------------------------------------------------------
class _Session:
    def __init__(self) -> None:
        self.executed: list[Any] = []

    async def execute(self, statement: Any, params: Any = None) -> None:
        self.executed.append((statement, params))


async def test_a_ledger_posting_not_from_rewards_is_refused() -> None:
    forged = new_event(
        LedgerPosted(
            transfer_id="00000000-0000-0000-0000-000000000001",
            kind=LedgerPostingKind.PAYOUT,
            provider=ProviderType.CRYPTO_EXCHANGE,
            amount=Money(asset="USDC", amount=1_000),
            payout_id="pay-1",
            posted_at=NOW,
        ),
        source="/prizeflow/webhooks",
        correlation_id="corr-x",
    )
    session = _Session()
    handler = PayoutRequestsHandler(create=None)  # type: ignore[arg-type]
    with pytest.raises(EventRefusal):
        await handler(session, [forged])  # type: ignore[arg-type]
    assert session.executed == []


# -- reversals: only money that came back in the payout's own asset counts ------------------------------------------
def test_a_reversal_in_another_asset_does_not_hide_money_paid_for_a_failed_payout() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", None, "failed", "USDT", 10_000_000, "EQdest")
    paid = StatementLine(
        line_id="tx-out",
        kind=StatementLineKind.PAYOUT,
        occurred_at=at,
        asset="USDT",
        amount=10_000_000,
        reference="pay-1",
        destination="EQdest",
    )
    tip = StatementLine(
        line_id="tx-in",
        kind=StatementLineKind.REVERSAL,
        occurred_at=at,
        asset="TON",
        amount=10_000_000,
        reference="pay-1",
        destination="EQanyone",
    )
    out = reconcile([paid, tip], [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [f.kind for f in out.findings] == [ExceptionKind.PAID_NOT_RECORDED]


# -- a payout still in flight when its window is run ----------------------------------------------------------------
# test_a_payout_paid_at_the_provider_while_in_flight_then_failed_here_is_found:
# fixed by remembering every line that names a payout (recon_payout_lines), which no single
# reconcile() call can show: proven across two runs on real PostgreSQL in
# services/payouts/tests/integration/test_reconciliation_history.py


# test_a_payout_marked_paid_late_is_not_missing:
# fixed by remembering every line that names a payout (recon_payout_lines), which no single
# reconcile() call can show: proven across two runs on real PostgreSQL in
# services/payouts/tests/integration/test_reconciliation_history.py


# -- one person may not close money that left the platform ----------------------------------------------------------
async def test_one_person_cannot_close_an_unrequested_debit() -> None:
    unrequested = replace(_exception(ExceptionKind.UNREQUESTED, 50_000), payout_id=None, player_id=None)
    store = _Store(unrequested, _Payouts(_payout()))
    recon = _recon(store, _Exchange())
    try:
        outcome = await recon.queue.resolve(7, ALICE, Action.ACKNOWLEDGE, "known transfer, fine")
    except ReconError:
        outcome = "refused"
    assert outcome in {"proposed", "refused"}
    assert store.exc.state is not ExceptionState.RESOLVED


# -- a reversal of the second payment is not the payout coming back --------------------------------------------------
def test_the_provider_taking_back_a_duplicate_payment_is_not_the_payout_returned() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", None, "paid", "USDC", 1_000, "GDEST", paid_at=at)
    back = StatementLine(
        line_id="wd-b:back",
        kind=StatementLineKind.REVERSAL,
        occurred_at=at + timedelta(minutes=5),
        asset="USDC",
        amount=1_000,
        reference="key-1",
        destination="GDEST",
    )
    lines = [_line("wd-a", at), _line("wd-b", at + timedelta(minutes=1)), back]
    out = reconcile(lines, [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert ExceptionKind.UNRECORDED_REVERSAL not in [f.kind for f in out.findings]


# -- a payout held returned that the provider paid and never got back ------------------------------------------------
def test_a_payout_held_returned_that_the_provider_paid_and_kept_is_found() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    returned = OurPayout("pay-1", "key-1", None, "returned", "USDC", 1_000, "GDEST", paid_at=at)
    out = reconcile([_line("wd-a", at)], [returned], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert out.findings, "money out at the provider for a payout we credited back, and nothing came back"


# -- Stripe: money that left the platform balance as anything but a transfer -----------------------------------------
def _stripe_bt(type_: str, amount: int, at: datetime, source: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": f"txn_{type_}_{amount}", "type": type_, "currency": "usd", "created": int(at.timestamp()),
            "amount": amount, "fee": 0, "source": source}  # fmt: skip


@pytest.mark.parametrize(
    ("type_", "amount", "kind", "finding"),
    [
        ("payout", -5_000_000, StatementLineKind.DEBIT, ExceptionKind.UNEXPLAINED_DEBIT),  # to a (changed) bank account
        ("adjustment", -12_345, StatementLineKind.DEBIT, ExceptionKind.UNEXPLAINED_DEBIT),  # a dispute withdrawn
        ("refund", -700, StatementLineKind.DEBIT, ExceptionKind.UNEXPLAINED_DEBIT),
        ("topup", 2_000_000, StatementLineKind.CREDIT, ExceptionKind.UNMATCHED_CREDIT),
        ("stripe_fee", 300, StatementLineKind.CREDIT, ExceptionKind.UNMATCHED_CREDIT),  # a fee Stripe refunded
    ],
)
def test_every_movement_of_the_stripe_balance_is_a_finding_with_its_sign(
    type_: str, amount: int, kind: StatementLineKind, finding: ExceptionKind
) -> None:
    from prizeflow_payouts.adapters.stripe.statement import lines_of as stripe_lines

    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    lines = stripe_lines(_stripe_bt(type_, amount, at, {"id": "po_attacker", "object": type_}), {"USD": "usd"})
    assert [(line.kind, line.amount) for line in lines] == [(kind, abs(amount))]
    out = reconcile(lines, [], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [(f.kind, f.amount, f.asset) for f in out.findings] == [(finding, abs(amount), "USD")]
    # the provider balance moved by the line's own sign: out is positive, in negative
    assert out.totals["USD"].provider_movement == -amount


def test_a_fee_of_a_payout_nobody_asked_for_is_in_its_finding_and_in_no_second_one() -> None:
    """RazorpayX lists an unrequested payout's fee under its payout id: one `unrequested` finding of both."""
    from prizeflow_payouts.adapters.upi.statement import lines_of as upi_lines

    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    source = {"entity": "payout", "id": "pout_x", "amount": 32_100, "fees": 590, "fund_account_id": "fa_1"}
    txn = {"id": "txn_1", "created_at": int(at.timestamp()), "source": source}
    out = reconcile(upi_lines(txn, {}), [], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [(f.kind, f.amount) for f in out.findings] == [(ExceptionKind.UNREQUESTED, 32_690)]
    assert out.totals["INR"].provider_movement == 32_690


def test_two_payouts_nobody_asked_for_under_one_reference_carry_its_fee_once() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    common = {"occurred_at": at, "asset": "USD", "provider_ref": "X"}
    lines = [
        StatementLine(line_id="p1", kind=StatementLineKind.PAYOUT, amount=100, **common),
        StatementLine(line_id="p2", kind=StatementLineKind.PAYOUT, amount=100, **common),
        StatementLine(line_id="f", kind=StatementLineKind.FEE, amount=5, **common),
    ]
    out = reconcile(lines, [], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert sorted((f.kind, f.amount) for f in out.findings) == [
        (ExceptionKind.UNREQUESTED, 100),
        (ExceptionKind.UNREQUESTED, 105),
    ]  # 205 left: written off twice, the fee is booked once


def test_money_out_under_a_payout_s_name_that_is_neither_its_payment_nor_its_fee_pages() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", "tr_1", "paid", "USD", 1_000, "acct_1", paid_at=at)
    paid = StatementLine(line_id="t", kind=StatementLineKind.PAYOUT, occurred_at=at, asset="USD", amount=1_000,
                         reference="key-1", provider_ref="tr_1", destination="acct_1")  # fmt: skip
    taken = StatementLine(line_id="d", kind=StatementLineKind.DEBIT, occurred_at=at, asset="USD", amount=400,
                          provider_ref="tr_1")  # fmt: skip
    out = reconcile([paid, taken], [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [(f.kind, f.amount, f.payout_id) for f in out.findings] == [(ExceptionKind.UNEXPLAINED_DEBIT, 400, "pay-1")]


@pytest.mark.parametrize(
    ("type_", "amount", "kind"),
    [
        ("transfer", 2_500, StatementLineKind.CREDIT),  # a transfer that added to the balance: no negative line
        ("transfer_refund", -300, StatementLineKind.DEBIT),  # a "return" that took money out
        ("stripe_fee", 0, StatementLineKind.CREDIT),  # moved nothing: no finding
    ],
)
def test_a_stripe_line_with_the_other_sign_than_its_type_is_money_moving_that_way(
    type_: str, amount: int, kind: StatementLineKind
) -> None:
    from prizeflow_payouts.adapters.stripe.statement import lines_of as stripe_lines

    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    (line,) = stripe_lines(_stripe_bt(type_, amount, at), {"USD": "usd"})
    assert (line.kind, line.amount) == (kind, abs(amount))
    out = reconcile([line], [], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert out.totals["USD"].provider_movement == -amount
    assert [f.amount for f in out.findings] == ([abs(amount)] if amount else [])


def test_a_line_in_no_direction_stored_by_an_older_build_is_placed_by_a_person() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    old = StatementLine(line_id="t-1", kind=StatementLineKind.OTHER, occurred_at=at, asset="USD", amount=9)
    out = reconcile([old], [], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [f.kind for f in out.findings] == [ExceptionKind.UNEXPLAINED_DEBIT]


# -- a window whose run failed is never run again ---------------------------------------------------------------------
@dataclass
class _RunStore:
    """Just enough of `RunStore` to run windows, in memory (one run per id, as recon_runs keeps them)."""

    runs: dict[str, Run] = field(default_factory=dict)
    staged: dict[str, list[StatementLine]] = field(default_factory=dict)
    payouts: Any = None

    async def claim_run(self, run_id: str, provider: str, since: datetime, until: datetime, **_: Any) -> Run | None:
        run = self.runs.get(run_id)
        if run is None or run.state != "completed":
            run = Run(run_id, provider, since, until, "running", None, fetched=False, pages=0)
            self.runs[run_id] = run
        return run

    async def stage_page(
        self, run_id: str, page: int, lines: Sequence[StatementLine], next_cursor: str | None, **_: Any
    ) -> bool:
        self.staged.setdefault(run_id, []).extend(lines)
        return True

    async def staged_lines(self, run_id: str) -> list[StatementLine]:
        return list(self.staged.get(run_id, []))

    async def our_payouts(self, *_: Any, **__: Any) -> list[OurPayout]:
        return []

    async def ledger_adjustments(self, *_: Any) -> dict[str, int]:
        return {}

    async def remembered(self, *_: Any) -> list[StatementLine]:
        return []

    async def remember(self, *_: Any) -> None:
        return None

    async def chains(self, *_: Any) -> dict[Any, Any]:
        return {}

    async def open_exceptions(self, *_: Any) -> int:
        return 0

    async def answer(self, *_: Any) -> int:
        return 0

    async def record_fees(self, *_: Any) -> int:
        return 0

    async def finish_run(self, run_id: str, *_: Any, **__: Any) -> bool:
        self.runs[run_id] = replace(self.runs[run_id], state="completed")
        return True

    async def fail_run(self, run_id: str, error: str, at: datetime, **_: Any) -> None:
        self.runs[run_id] = replace(self.runs[run_id], state="failed")


@dataclass
class _FlakyRail:
    provider_type: ProviderType = ProviderType.CRYPTO_EXCHANGE
    down: bool = True
    asked: list[datetime] = field(default_factory=list)

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError

        self.asked.append(since)
        if self.down:
            raise PayoutProviderError.of(PayoutErrorCode.PROVIDER_UNAVAILABLE, "listing down", provider="exchange")
        return StatementPage(lines=())


async def test_a_window_whose_run_failed_is_run_again_by_the_schedule() -> None:
    store = _RunStore()
    rail = _FlakyRail()
    now = [datetime(2026, 11, 25, 11, 20, tzinfo=UTC)]

    recon = _wire(store, rail, settles=False, ledger=False, clock=lambda: now[0])
    await recon.runs.run_due()  # 10:00-11:00 (and the windows before it): the listing is down
    failed = {r.since for r in store.runs.values() if r.state == "failed"}
    assert datetime(2026, 11, 25, 10, tzinfo=UTC) in failed
    rail.down = False
    now[0] += timedelta(hours=1)
    await recon.runs.run_due()  # 11:00-12:00, the listing back: the failed windows are run again too
    completed = {r.since for r in store.runs.values() if r.state == "completed"}
    horizon = datetime(2026, 11, 25, 11, tzinfo=UTC) - 23 * timedelta(hours=1)  # CATCH_UP windows back
    assert {f for f in failed if f >= horizon} | {datetime(2026, 11, 25, 11, tzinfo=UTC)} <= completed


# -- write-offs must add to the rail's account only what the ledger has not booked -----------------------------------
def test_write_offs_of_one_provider_line_never_exceed_what_the_ledger_lacks() -> None:
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", None, "paid", "USDC", 1_000, "GPLAYER", paid_at=at, ledger=1_000)
    elsewhere = StatementLine(
        line_id="wd-a",
        kind=StatementLineKind.PAYOUT,
        occurred_at=at,
        asset="USDC",
        amount=1_500,
        reference="key-1",
        destination="GSOMEONE",
    )
    out = reconcile([elsewhere], [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    written_off = sum(f.amount or 0 for f in out.findings if Action.WRITE_OFF in ACTIONS[f.kind])
    assert written_off <= 1_500 - 1_000


# -- a run's window has a bound --------------------------------------------------------------------------------------
async def test_a_run_of_a_year_is_refused() -> None:
    store = _Store(_exception(ExceptionKind.MISSING, 1), _Payouts(_payout()))
    recon = _recon(store, _Exchange())
    until = NOW - timedelta(hours=1)
    with pytest.raises(ReconError):
        await recon.runs.run("exchange", until - timedelta(days=366), until, requested_by="olga")


# -- an overpayment is money that left without us -------------------------------------------------------------------
def test_an_overpayment_pages_as_money_that_left_without_us() -> None:
    from prizeflow_reconciliation.domain import UNMATCHED_DEBITS

    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout("pay-1", "key-1", None, "paid", "USDC", 1_000, "GDEST", paid_at=at)
    over = _line("wd-a", at).model_copy(update={"amount": 1_000_000})
    out = reconcile([over], [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert [f.kind in UNMATCHED_DEBITS for f in out.findings] == [True]


def test_a_duplicate_payment_s_network_fee_in_another_asset_is_an_unbooked_fee() -> None:
    """Issue 56: a USDC payout on a chain paid twice, each payment charged its network fee in XLM. The first fee is
    the payout's recorded one; the second payment's is money out no book holds: an unbooked fee in XLM, beside the
    duplicate (fees in the payout's own asset are in the duplicate's amount)."""
    at = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    ours = OurPayout(
        "pay-1", "key-1", None, "paid", "USDC", 1_000, "GDEST", fee_asset="XLM", fee_amount=100, paid_at=at
    )

    def fee(line_id: str) -> StatementLine:
        return _line(line_id, at).model_copy(update={"kind": StatementLineKind.FEE, "asset": "XLM", "amount": 100})

    lines = [_line("wd-a", at), fee("wd-a:fee"), _line("wd-b", at), fee("wd-b:fee")]
    out = reconcile(lines, [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert sorted((f.kind, f.subject, f.asset, f.amount) for f in out.findings) == [
        (ExceptionKind.DUPLICATE, "payout:pay-1", "USDC", 1_000),
        (ExceptionKind.UNBOOKED_FEE, "payout:pay-1:XLM", "XLM", 100),
    ]
    once = reconcile(lines[:2], [ours], since=at.replace(minute=0), until=at.replace(hour=11, minute=0))
    assert once.findings == []  # paid once: its recorded fee, nothing found
