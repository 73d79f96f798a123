"""The worker's gated claim in SQL (`SqlHoldStore.lock_due_for_submit` then `claim_locked`), on PostgreSQL, when its
statistics are stale: taken while no payout was due (after a quiet spell), then a burst of due payouts. The claim
must stay driven by the ids it was given. Before, it joined the ids to the due rows, and with such statistics
PostgreSQL compared every due row with every id: 1.2 s for 500 ids among 20,000 due payouts, four times the
statement's share of a payout in the bench's payouts phase after its claims phase (docs/capacity.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from prizeflow_payouts.adapters.holds_pg import _CLAIM_LOCKED, _LOCK_DUE, SqlHoldStore
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit.payouts import seed_payouts
from prizeflow_testkit.plans import array_literal, generic_plan, most_rows_read, rows_thrown_away

pytestmark = pytest.mark.integration

_DUE = seed_payouts("approved", available_at="$3")
_PAID = seed_payouts("paid", attempts=1, paid_at="now()", provider_ref="'ref-' || g")


async def _quiet_then_burst(conn: asyncpg.Connection) -> None:
    # The statistics see 3,000 payouts, every one paid: a quiet spell.
    await conn.execute(_PAID, "paid-", 3000)
    await conn.execute("ANALYZE payouts")
    # Then a burst: 6,000 due at once.
    await conn.execute(_DUE, "due-", 6000, datetime.now(UTC) - timedelta(seconds=1))


async def test_a_burst_after_statistics_saw_nothing_due_is_claimed_by_its_ids(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        # The plan the plan cache settles on after a prepared statement's fifth run (the worker's steady state),
        # for a batch of 500 due payouts as the pass locked them.
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM payouts WHERE state = 'approved' LIMIT 500")]
        plan = await generic_plan(
            conn,
            _CLAIM_LOCKED.text,
            {
                "ids": array_literal(ids),
                "states": array_literal(["approved"] * len(ids)),
                "owner": "'w1'",
                "lease_s": "30",
            },
        )
        # Each id found once: no plan that compares the due rows with the ids (the old one removed 2,999,500).
        assert rows_thrown_away(plan) <= len(ids)

        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            holds = SqlHoldStore(session)
            locked = await holds.lock_due_for_submit(limit=500)
            assert len(locked) == 500
            assert all(p.id.startswith("due-") for p in locked)
            claimed = await holds.claim_locked(locked, owner="w1", lease_s=30.0)
            assert sorted(p.id for p in claimed) == sorted(p.id for p in locked)
            assert all(p.state is PayoutState.SUBMITTING and p.previous_state is PayoutState.APPROVED for p in claimed)
            await session.commit()
        assert await conn.fetchval("SELECT count(*) FROM payouts WHERE state = 'submitting'") == 500
    finally:
        await engine.dispose()
        await conn.close()


async def test_a_locked_payout_this_transaction_moved_is_not_claimed(db: str) -> None:
    """Claimed by id and by the state it was locked in: one held in the same transaction (approved → pending
    approval) after the lock is left as it is, and so is one whose id was never locked as due."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await conn.execute(_DUE, "due-", 3, datetime.now(UTC) - timedelta(seconds=1))
        await conn.execute(_DUE, "later-", 1, datetime.now(UTC) + timedelta(days=1))
        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            holds = SqlHoldStore(session)
            locked = sorted(await holds.lock_due_for_submit(limit=10), key=lambda p: p.id)
            assert [p.id for p in locked] == ["due-1", "due-2", "due-3"]
            await session.execute(text("UPDATE payouts SET state = 'pending_approval' WHERE id = 'due-2'"))
            # `later-1` as if locked as due, which it is not (available in a day).
            claimed = await holds.claim_locked([*locked, replace(locked[0], id="later-1")], owner="w1", lease_s=30.0)
            assert sorted(p.id for p in claimed) == ["due-1", "due-3"]
            await session.commit()
        states = dict(await conn.fetch("SELECT id, state FROM payouts ORDER BY id"))
        assert states == {
            "due-1": "submitting",
            "due-2": "pending_approval",
            "due-3": "submitting",
            "later-1": "approved",
        }
    finally:
        await engine.dispose()
        await conn.close()


async def test_a_pass_reads_a_batch_of_the_backlog_in_order_not_the_whole_backlog(db: str) -> None:
    """The due payouts are taken in their order (`coalesce(lease_until, next_attempt_at, available_at)`) a batch at
    a time: the pass reads them in that order from `payouts_due_order` and stops at the batch, with statistics from
    before the burst. Before migration 0030 it found every due payout and sorted them all: 6,000 rows read for a
    batch of 500 (104 to 121 ms a pass with 100,000 due)."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        plan = await generic_plan(conn, _LOCK_DUE.text, {"limit": "500"})
        assert most_rows_read(plan, "payouts") <= 2 * 500
        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            locked = await SqlHoldStore(session).lock_due_for_submit(limit=500)
            assert len(locked) == 500
            assert all(p.id.startswith("due-") for p in locked)
            await session.rollback()
    finally:
        await engine.dispose()
        await conn.close()


async def test_the_next_due_time_is_the_earliest_moment_a_claim_finds_something(db: str) -> None:
    """What an idle worker sleeps until (`SqlPayoutRepository.next_due_in`): the earliest of an approved payout's
    availability, a retry, a lease's end and a status sync of the rails it polls; nothing waiting: None; something
    due now: zero or less. Paid payouts and syncs of rails it does not poll count for nothing."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)

    async def due_in(providers: list[str]) -> float | None:
        async with engine.connect() as c:
            return await SqlPayoutRepository(AsyncSession(bind=c)).next_due_in(providers=providers)

    try:
        assert await due_in(["sandbox"]) is None
        await conn.execute(_PAID, "paid-", 5)
        assert await due_in(["sandbox"]) is None
        await conn.execute(seed_payouts("approved", available_at="now() + interval '40 seconds'"), "approved-", 3)
        assert 38 < (await due_in(["sandbox"]) or 0) <= 40
        failed = seed_payouts(
            "failed", attempts=1, next_attempt_at="now() + interval '30 seconds'", last_error_code="'provider_error'"
        )
        await conn.execute(failed, "retry-", 2)
        assert 28 < (await due_in(["sandbox"]) or 0) <= 30
        leased = seed_payouts(
            "submitting",
            attempts=1,
            lease_owner="'w1'",
            lease_token="gen_random_uuid()",
            lease_until="now() + interval '20 seconds'",
        )
        await conn.execute(leased, "leased-", 2)
        assert 18 < (await due_in(["sandbox"]) or 0) <= 20
        synced = seed_payouts(
            "submitted", attempts=1, provider_ref="'ref-' || g", next_sync_at="now() + interval '10 seconds'"
        )
        await conn.execute(synced, "synced-", 2)
        assert 8 < (await due_in(["sandbox"]) or 0) <= 10
        assert 18 < (await due_in(["stripe"]) or 0) <= 20  # a rail it does not poll: its syncs are not its work
        await conn.execute("UPDATE payouts SET available_at = now() - interval '1 second' WHERE id = 'approved-1'")
        assert (await due_in(["sandbox"]) or 1) <= 0
    finally:
        await engine.dispose()
        await conn.close()
