"""The worker's gated claim in SQL (`SqlHoldStore.lock_due_for_submit` then `claim_locked`), on PostgreSQL, when its
statistics are stale: taken while no payout was due (after a quiet spell), then a burst of due payouts. The claim
must stay driven by the ids it was given. Before, it joined the ids to the due rows, and with such statistics
PostgreSQL compared every due row with every id: 1.2 s for 500 ids among 20,000 due payouts, four times the
statement's share of a payout in the bench's payouts phase after its claims phase (docs/capacity.md)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from prizeflow_payouts.adapters.holds_pg import _CLAIM_LOCKED, _LOCK_DUE, SqlHoldStore
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

pytestmark = pytest.mark.integration

_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, created_at, updated_at, available_at) "
    "SELECT $1 || g, $1 || g, $1 || g, 'h', $1 || g, 'p' || (g % 97), 'p', 'USDC', 100, 'sandbox', "
    "'success:p' || (g % 97), 'sandbox', 'sandbox', 'approved', 'auto', $1 || g, 0, 3, now(), now(), $2 "
    "FROM generate_series(1, $3) g"
)

_PAID = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, created_at, updated_at, paid_at, provider_ref) "
    "SELECT 'paid-' || g, 'paid-' || g, 'paid-' || g, 'h', 'paid-' || g, 'p' || (g % 97), 'p', 'USDC', 100, "
    "'sandbox', 'success:p' || (g % 97), 'sandbox', 'sandbox', 'paid', 'auto', 'paid-' || g, 1, 3, now(), now(), "
    "now(), 'ref-' || g FROM generate_series(1, $1) g"
)


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _generic_plan(session: AsyncSession, locked: list[Payout]) -> Any:
    sql = _CLAIM_LOCKED.text
    names = [n for n in ("ids", "states", "owner", "lease_s") if f":{n}" in sql]
    for i, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${i}")
    values = {
        "ids": "'{" + ",".join(p.id for p in locked) + "}'",
        "states": "'{" + ",".join(p.state.value for p in locked) + "}'",
        "owner": "'w1'",
        "lease_s": "30",
    }
    conn = await session.connection()
    await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    await conn.exec_driver_sql(f"PREPARE claim_locked AS {sql}")
    args = ", ".join(values[n] for n in names)
    plan = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_locked({args})")).scalar()
    return plan if isinstance(plan, list) else json.loads(str(plan))


def _removed_by_join_filters(node: dict[str, Any]) -> int:
    own = int(node.get("Rows Removed by Join Filter", 0)) * int(node.get("Actual Loops", 1))
    return own + sum(_removed_by_join_filters(child) for child in node.get("Plans", []))


async def test_a_burst_after_statistics_saw_nothing_due_is_claimed_by_its_ids(db: str) -> None:
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        # The statistics see 3,000 payouts, every one paid: a quiet spell.
        await conn.execute(_PAID, 3000)
        await conn.execute("ANALYZE payouts")
        # Then a burst: 6,000 due at once.
        await conn.execute(_INSERT, "due-", datetime.now(UTC) - timedelta(seconds=1), 6000)
        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            holds = SqlHoldStore(session)
            locked = await holds.lock_due_for_submit(limit=500)
            assert len(locked) == 500
            assert all(p.id.startswith("due-") for p in locked)
            # The plan the plan cache settles on after a prepared statement's fifth run (the worker's steady state):
            # the statement prepared as the driver prepares it, explained generic.
            doc = await _generic_plan(session, locked)
            # Each id found once: no plan that compares the due rows with the ids (the old one removed 2,999,500).
            assert _removed_by_join_filters(doc[0]["Plan"]) <= len(locked)
            await session.rollback()

            locked = await holds.lock_due_for_submit(limit=500)
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
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        await conn.execute(_INSERT, "due-", datetime.now(UTC) - timedelta(seconds=1), 3)
        await conn.execute(_INSERT, "later-", datetime.now(UTC) + timedelta(days=1), 1)
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


def _most_rows_read(node: dict[str, Any], relation: str) -> int:
    own = int(node.get("Actual Rows", 0)) if node.get("Relation Name") == relation else 0
    return max([own, *(_most_rows_read(child, relation) for child in node.get("Plans", []))])


async def test_a_pass_reads_a_batch_of_the_backlog_in_order_not_the_whole_backlog(db: str) -> None:
    """The due payouts are taken in their order (`coalesce(lease_until, next_attempt_at, available_at)`) a batch at
    a time: the pass reads them in that order from `payouts_due_order` and stops at the batch, with statistics from
    before the burst. Before migration 0030 it found every due payout and sorted them all: 6,000 rows read for a
    batch of 500 (104 to 121 ms a pass with 100,000 due)."""
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        await conn.execute(_PAID, 3000)
        await conn.execute("ANALYZE payouts")
        await conn.execute(_INSERT, "due-", datetime.now(UTC) - timedelta(seconds=1), 6000)
        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            raw = await session.connection()
            await raw.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            await raw.exec_driver_sql(f"PREPARE lock_due AS {_LOCK_DUE.text.replace(':limit', '$1')}")
            plan = (await raw.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE lock_due(500)")).scalar()
            doc = plan if isinstance(plan, list) else json.loads(str(plan))
            assert _most_rows_read(doc[0]["Plan"], "payouts") <= 2 * 500
            await session.rollback()
            locked = await SqlHoldStore(session).lock_due_for_submit(limit=500)
            assert len(locked) == 500
            assert all(p.id.startswith("due-") for p in locked)
            await session.rollback()
    finally:
        await engine.dispose()
        await conn.close()
