"""Reconciliation's money invariant on real PostgreSQL (issue 56): the provider's money equals the books' plus what is
still open in the exception queue, after every step of a payout's life at its provider.

`tests/unit/reconciliation/test_reconciliation_money.py` holds it for the pure rules over a queue in memory that
imitates PostgreSQL. Here the same steps go through reconciliation as the composition root wires it
(`compose_reconciliation`: `ReconcileWindows` and `ExceptionQueue` over the SQL stores of `adapters.books`), on a
payout row inserted in `payouts`; the provider's statement is the only fake. The books and the queue are read back
with SQL: the payout's amount and recorded fee, the adjustments resolutions staged for rewards (`outbox`), the
acknowledgements people recorded, and the exceptions still open (`recon_exceptions`, chains per migration 0024)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.payouts import ReconciliationAdjusted
from prizeflow_contracts.providers import ProviderType, StatementLine, StatementLineKind, StatementPage
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.application.recon_returns import ReturnPaidPayouts
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_reconciliation.application.ports import Actor
from prizeflow_reconciliation.bootstrap import Reconciliation, compose_reconciliation
from prizeflow_reconciliation.domain import Action, ExceptionKind
from prizeflow_reconciliation.statements import PayoutReturns, RailStatement, Statements
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_testkit.payouts import ALEMBIC_INI

pytestmark = pytest.mark.integration

K = ExceptionKind
L = StatementLineKind
HOUR = timedelta(hours=1)
SLACK = timedelta(minutes=15)
# Window k is [T0 + k h, T0 + (k + 1) h); the payout is paid in window 0. A day back: every window of an example
# (15 at most) ended long before its run (a run refuses a window not closed the slack ago).
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
AMOUNT = 10_000  # 100 USD in cents
PROVIDER = "rail"
# Which way an open finding's money goes: more out at the provider than the books hold (+), or less (-); as in memory.
SIGN = {K.DUPLICATE: 1, K.UNBOOKED_FEE: 1, K.UNRECORDED_REVERSAL: -1, K.MISSING: -1}
# How people resolve each kind that moves money in this property (a `missing` is left to the run that finds its
# payment): the money action, or an acknowledgement on record with what was done (a ledger correction elsewhere).
MONEY = {K.DUPLICATE: Action.WRITE_OFF, K.UNBOOKED_FEE: Action.BOOK_FEE, K.UNRECORDED_REVERSAL: Action.ACKNOWLEDGE}
OPS = Actor("olga", frozenset({"ops"}), "corr-olga")
APPROVER = Actor("bob", frozenset({"approver"}), "corr-bob")

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, provider_ref, fee_asset, fee_amount, paid_at, finished_at, created_at, "
    "updated_at) "
    "VALUES ('po-1', 'po-1', 'key-1', 'h', 'claim-1', 'player-1', 'player-1', 'USD', $1, 'sandbox', 'acct_1', "
    "'sandbox', $2, 'paid', 'auto', 'corr-po-1', 1, 3, 'tr_1', $3, $4, $5, $5, $5, $5)"
)


@dataclass
class _Provider:
    """The provider's statement as it stands now (the only fake): the lines dated in the range asked, two a page."""

    lines: list[StatementLine] = field(default_factory=list)
    provider_type: ProviderType = ProviderType.SANDBOX

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        listed = [line for line in self.lines if since <= line.occurred_at < until]
        start = int(cursor or 0)
        more = start + 2 < len(listed)
        return StatementPage(lines=tuple(listed[start : start + 2]), next_cursor=str(start + 2) if more else None)


@asynccontextmanager
async def _reconciliation(database_url: str, provider: _Provider) -> AsyncIterator[Reconciliation]:
    """Reconciliation wired by its composition root on `database_url`, the payout lifecycle's returns bound in."""
    engine = create_engine(database_url, pool_size=2)
    builder = ChangeBuilder(source="/prizeflow/payouts", policy=RetryPolicy())

    def returns(session: AsyncSession) -> PayoutReturns:
        return ReturnPaidPayouts(SqlPayoutRepository(session), builder)

    try:
        yield compose_reconciliation(
            sessions=session_factory(engine),
            statements=Statements([RailStatement(PROVIDER, ProviderType.SANDBOX, reader=provider)]),
            returns=returns,
            registry=CollectorRegistry(),
            service="payouts",
            source="/prizeflow/payouts",
            owner="replica-1",
            slack=SLACK,
            window=HOUR,
            ledger=False,  # no rewards here: the ledger's postings are not compared
        )
    finally:
        await engine.dispose()


@dataclass
class _World:
    """One payout: what the provider lists (in memory), what PostgreSQL holds of the books and the queue."""

    recon: Reconciliation
    conn: asyncpg.Connection
    provider: _Provider
    window: int = 0
    n: int = 0

    def at(self) -> datetime:
        return T0 + self.window * HOUR + 30 * timedelta(minutes=1)

    def add(self, kind: StatementLineKind, amount: int) -> None:
        self.n += 1
        self.provider.lines.append(
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
        return sum(line.amount for line in self.provider.lines if line.kind is kind)

    async def run(self, since: datetime, until: datetime, *, by: str = "schedule") -> None:
        await self.recon.runs.run(PROVIDER, since, until, requested_by=by)

    async def resolve(self, pick: int, *, acknowledge: bool) -> None:
        """People resolve one open exception through the queue: a duplicate written off, a fee booked, a partial
        reversal acknowledged (a ledger correction of what came back), or any of them acknowledged with what was
        done; one person where the domain lets one, else proposed by one and confirmed by a second."""
        rows = await self.conn.fetch(
            "SELECT id, kind FROM recon_exceptions WHERE state <> 'resolved' AND kind <> 'missing' ORDER BY id"
        )
        if not rows:
            return
        row = rows[pick % len(rows)]
        action = Action.ACKNOWLEDGE if acknowledge else MONEY[K(row["kind"])]
        queue, reason = self.recon.queue, f"{action.value} by the property"
        first = await queue.resolve(row["id"], OPS, action, reason)
        if first == "proposed":
            assert await queue.resolve(row["id"], APPROVER, action, reason) == "resolved"
        else:
            assert first == "resolved"

    async def check(self) -> None:
        """The provider's money (payouts and fees out, reversals back) is the books' (the payout, its recorded fee,
        what resolutions booked or people corrected) plus the signed money of the exceptions still open."""
        provider = self.total(L.PAYOUT) + self.total(L.FEE) - self.total(L.REVERSAL)
        payout = await self.conn.fetchrow("SELECT amount, fee_asset, fee_amount FROM payouts WHERE id = 'po-1'")
        assert payout is not None
        assert payout["fee_asset"] in {None, "USD"}, payout
        exceptions = await self.conn.fetch(
            "SELECT id, kind, subject, state, resolution, resolved_by, adjustment_id, amount FROM recon_exceptions"
            " ORDER BY id"
        )
        assert {K(e["kind"]) for e in exceptions} <= set(SIGN), [tuple(e) for e in exceptions]
        adjusted = [
            event.data
            for event in (decode(r["payload"]) for r in await self.conn.fetch("SELECT payload FROM outbox"))
            if isinstance(event.data, ReconciliationAdjusted)
        ]
        by_people = [e for e in exceptions if e["state"] == "resolved" and "reconciliation" not in e["resolved_by"]]
        booked = {e["adjustment_id"]: e for e in by_people if e["adjustment_id"] is not None}
        # Each adjustment staged for rewards is one resolved exception's money, once.
        assert sorted((a.adjustment_id, a.amount.asset, a.amount.amount) for a in adjusted) == sorted(
            (key, "USD", e["amount"]) for key, e in booked.items()
        )
        corrected = sum(
            SIGN[K(e["kind"])] * e["amount"] for e in by_people if e["resolution"] == Action.ACKNOWLEDGE.value
        )
        ledger = payout["amount"] + (payout["fee_amount"] or 0) + sum(a.amount.amount for a in adjusted) + corrected
        still_open = sum(SIGN[K(e["kind"])] * (e["amount"] or 0) for e in exceptions if e["state"] != "resolved")
        assert provider == ledger + still_open, (provider, ledger, still_open, [tuple(e) for e in exceptions])
        if sum(1 for line in self.provider.lines if line.kind is L.PAYOUT) <= 1:
            assert all(K(e["kind"]) is not K.DUPLICATE for e in exceptions), "a single payment"

    async def step(self, step: str, value: int) -> None:
        """One step of the in-memory property, then the run it calls for, then the check."""
        if step in {"resolve", "acknowledge"}:
            await self.resolve(value, acknowledge=step == "acknowledge")
            await self.check()
            return
        self.window += 1
        if step == "again":
            self.add(L.PAYOUT, AMOUNT)
        elif step == "back":
            left = self.total(L.PAYOUT) - self.total(L.REVERSAL)
            if left > 0:
                self.add(L.REVERSAL, min(value, left))
        elif step == "fee":
            self.add(L.FEE, value)
        elif step == "fee_same_line":
            # As Stripe shows a fee raised on a transaction: the same balance transaction's fee, now higher.
            fees = [i for i, line in enumerate(self.provider.lines) if line.kind is L.FEE]
            if fees:
                i = fees[-1]
                line = self.provider.lines[i]
                self.provider.lines[i] = line.model_copy(update={"amount": line.amount + value})
            else:
                self.add(L.FEE, value)
        elif step == "late" and not any(line.kind is L.PAYOUT for line in self.provider.lines):
            self.add(L.PAYOUT, AMOUNT)
        if step in {"rerun", "fee_same_line"}:
            # An overlapping window from the payout's own on. A fee raised on a line already listed is seen by a run
            # that reads the payout (its statement names it: its history is read again, the test below) or the
            # line's date; a window's run that names nothing of it does not look at the payout at all.
            await self.run(T0, T0 + (self.window + 1) * HOUR, by="olga")
        else:
            await self.run(T0 + self.window * HOUR, T0 + (self.window + 1) * HOUR)
        await self.check()


@asynccontextmanager
async def _paid(database_url: str, *, late: bool, fee: int | None) -> AsyncIterator[_World]:
    """The payout paid in window 0 on `database_url` (its fee recorded with it, 0 included, or not), listed by the
    provider then (and its fee charged) or later, its window run and checked."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            _INSERT, AMOUNT, PROVIDER, "USD" if fee is not None else None, fee, T0 + 10 * timedelta(minutes=1)
        )
        provider = _Provider()
        async with _reconciliation(database_url, provider) as recon:
            world = _World(recon, conn, provider)
            if not late:
                world.add(L.PAYOUT, AMOUNT)
            if fee:
                world.add(L.FEE, fee)
            await world.run(T0, T0 + HOUR)
            await world.check()
            yield world
    finally:
        await conn.close()


_steps = st.lists(
    st.one_of(
        st.just(("again", 0)),
        st.tuples(st.just("back"), st.integers(1, AMOUNT)),
        st.tuples(st.just("fee"), st.integers(1, 500)),
        st.tuples(st.just("fee_same_line"), st.integers(1, 500)),
        st.just(("late", 0)),
        st.just(("rerun", 0)),
        st.tuples(st.just("resolve"), st.integers(0, 10)),
        st.tuples(st.just("acknowledge"), st.integers(0, 10)),
    ),
    max_size=14,
)


# `migrated_database` is a factory: each example asks it for a database of its own (all dropped after the test).
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(late=st.booleans(), fee=st.sampled_from([None, 0, 25]), steps=_steps)
async def test_provider_money_is_the_books_plus_what_is_open_after_every_step_on_postgresql(
    migrated_database: Callable[[str], str], late: bool, fee: int | None, steps: list[tuple[str, int]]
) -> None:
    """The in-memory property's steps, through the runs and the queue on PostgreSQL."""
    database_url = await asyncio.to_thread(migrated_database, ALEMBIC_INI)
    async with _paid(database_url, late=late, fee=fee) as world:
        for step, value in steps:
            await world.step(step, value)


# -- where PostgreSQL and the model in memory part ---------------------------------------------------------------------
async def test_a_fee_raised_on_a_line_already_listed_is_found_by_the_next_run_that_reads_its_payout(db: str) -> None:
    """25 charged with the payment in window 0 (recorded with the payout); the provider then shows 26 on the same
    line, and gives 1 USD back in window 1. Window 1's run reads the payout (the refund names it), and with it the
    payout's history at the provider as it stands now: the refund and the 1 more in fees (before issue 56's fix it
    judged the fee line by the copy remembered in window 0: the provider's money was 1 more than the books' and the
    queue's)."""
    async with _paid(db, late=False, fee=25) as world:
        fee = world.provider.lines[-1]
        world.provider.lines[-1] = fee.model_copy(update={"amount": 26})
        world.window = 1
        world.add(L.REVERSAL, 100)
        await world.run(T0 + HOUR, T0 + 2 * HOUR)
        found = await world.conn.fetch("SELECT kind, amount FROM recon_exceptions WHERE state = 'open' ORDER BY kind")
        assert [tuple(r) for r in found] == [("unbooked_fee", 1), ("unrecorded_reversal", 100)]
        await world.check()
