"""The Stellar queue's statements driven by a batch's payout ids, on PostgreSQL, when their statistics are stale:
taken while nothing was queued (a quiet spell, every payout paid), then a burst of queued payouts. Each must stay
driven by its ids. Before, its `state = 'queued'` let the plan start from the queue's partial index, and with such
statistics PostgreSQL's generic plan read the whole queue and compared every queued payout with every id: 19 ms for
a transaction's 100 payouts among 20,000 queued, growing with the queue."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from prizeflow_payouts.adapters.stellar import store as q
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit.plans import array_literal, generic_plan, rows_thrown_away

pytestmark = pytest.mark.integration

_ROWS = (
    "INSERT INTO stellar_payouts (idempotency_key, payout_id, provider, asset, amount, destination, state, tx_id, "
    "tx_hash) SELECT $1 || g, $1 || g, 'stellar', 'USDC', 100, 'GDEST', $2, $3, $4 FROM generate_series(1, $5) g"
)


async def _quiet_then_burst(conn: asyncpg.Connection) -> None:
    # The statistics see 3,000 payouts, every one paid: a quiet spell.
    await conn.execute(_ROWS, "paid-", "paid", "tx-old", "hash-old", 3000)
    await conn.execute("ANALYZE stellar_payouts")
    # Then a burst: 6,000 queued at once.
    await conn.execute(_ROWS, "q-", "queued", None, None, 6000)


async def test_a_transaction_takes_its_payouts_from_a_burst_by_their_ids(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        plan = await generic_plan(conn, q.ASSIGN_PAYOUTS.text, {"tx": "'tx-1'", "payout_ids": array_literal(ids)})
        # Each id looked up by key: no queued payout read and thrown away (the old statement threw away 5,900).
        assert rows_thrown_away(plan) == 0

        # Behaviour: the queued ones among the ids move into the transaction; a paid one among them does not.
        async with engine.begin() as c:
            await c.execute(q.ASSIGN_PAYOUTS, {"tx": "tx-1", "payout_ids": [*ids, "paid-1"]})
        rows = await conn.fetch("SELECT payout_id, state, tx_id, attempts FROM stellar_payouts WHERE tx_id = 'tx-1'")
        assert sorted(r["payout_id"] for r in rows) == sorted(ids)
        assert all(r["state"] == "in_tx" and r["attempts"] == 1 for r in rows)
        assert await conn.fetchval("SELECT count(*) FROM stellar_payouts WHERE state = 'queued'") == 5900
        assert await conn.fetchval("SELECT state FROM stellar_payouts WHERE payout_id = 'paid-1'") == "paid"
    finally:
        await engine.dispose()
        await conn.close()


async def test_a_build_that_cannot_be_made_fails_its_payouts_by_their_ids(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        plan = await generic_plan(conn, q.FAIL_QUEUED.text, {"detail": "'bad'", "ids": array_literal(ids)})
        assert rows_thrown_away(plan) == 0

        async with engine.begin() as c:
            await c.execute(q.FAIL_QUEUED, {"ids": [*ids[:3], "paid-1"], "detail": "cannot be built"})
        failed = await conn.fetch("SELECT payout_id, error_code FROM stellar_payouts WHERE state = 'failed'")
        assert sorted(r["payout_id"] for r in failed) == sorted(ids[:3])
        assert {r["error_code"] for r in failed} == {"invalid_request"}
        assert await conn.fetchval("SELECT state FROM stellar_payouts WHERE payout_id = 'paid-1'") == "paid"
    finally:
        await engine.dispose()
        await conn.close()


async def test_a_build_to_isolate_marks_its_payouts_by_their_ids(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        plan = await generic_plan(conn, q.ISOLATE.text, {"ids": array_literal(ids)})
        assert rows_thrown_away(plan) == 0

        async with engine.begin() as c:
            await c.execute(q.ISOLATE, {"ids": [*ids[:3], "paid-1"]})
        isolated = await conn.fetch("SELECT payout_id FROM stellar_payouts WHERE isolate")
        assert sorted(r["payout_id"] for r in isolated) == sorted(ids[:3])
    finally:
        await engine.dispose()
        await conn.close()
