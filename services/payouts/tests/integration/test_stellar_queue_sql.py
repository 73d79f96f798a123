"""The Stellar queue's statements driven by a batch's payout ids, on PostgreSQL, when their statistics are stale:
taken while nothing was queued (a quiet spell, every payout paid), then a burst of queued payouts. Each must stay
driven by its ids. Before, its `state = 'queued'` let the plan start from the queue's partial index, and with such
statistics PostgreSQL's generic plan read the whole queue and compared every queued payout with every id: 19 ms for
a transaction's 100 payouts among 20,000 queued, growing with the queue."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy import TextClause
from sqlalchemy.ext.asyncio import create_async_engine

from prizeflow_payouts.adapters.stellar import store as q

pytestmark = pytest.mark.integration

_ROWS = (
    "INSERT INTO stellar_payouts (idempotency_key, payout_id, provider, asset, amount, destination, state, tx_id, "
    "tx_hash) SELECT $1 || g, $1 || g, 'stellar', 'USDC', 100, 'GDEST', $2, $3, $4 FROM generate_series(1, $5) g"
)


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _generic_plan(conn: asyncpg.Connection, statement: TextClause, values: dict[str, str]) -> Any:
    """The plan the plan cache settles on after a prepared statement's fifth run (the steady state): the statement
    prepared with `$n` as the driver prepares it, explained generic (values as SQL literals), rolled back."""
    sql = statement.text
    names = [n for n in values if f":{n}" in sql]
    for i, name in enumerate(names, 1):
        sql = sql.replace(f":{name}", f"${i}")
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE queue_statement AS {sql}")
        args = ", ".join(values[n] for n in names)
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE queue_statement({args})")
    finally:
        await tr.rollback()
    return json.loads(plan) if isinstance(plan, str) else plan


def _rows_compared_and_removed(node: dict[str, Any]) -> int:
    """Rows a scan or join read and then threw away, over all its loops: a rows x ids plan shows here."""
    loops = int(node.get("Actual Loops", 1))
    own = (int(node.get("Rows Removed by Filter", 0)) + int(node.get("Rows Removed by Join Filter", 0))) * loops
    return own + sum(_rows_compared_and_removed(child) for child in node.get("Plans", []))


async def _quiet_then_burst(conn: asyncpg.Connection) -> None:
    # The statistics see 3,000 payouts, every one paid: a quiet spell.
    await conn.execute(_ROWS, "paid-", "paid", "tx-old", "hash-old", 3000)
    await conn.execute("ANALYZE stellar_payouts")
    # Then a burst: 6,000 queued at once.
    await conn.execute(_ROWS, "q-", "queued", None, None, 6000)


async def test_a_transaction_takes_its_payouts_from_a_burst_by_their_ids(db: str) -> None:
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        doc = await _generic_plan(conn, q.ASSIGN_PAYOUTS, {"tx": "'tx-1'", "payout_ids": "'{" + ",".join(ids) + "}'"})
        # Each id looked up by key: no queued payout read and thrown away (the old statement threw away 5,900).
        assert _rows_compared_and_removed(doc[0]["Plan"]) == 0

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
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        doc = await _generic_plan(conn, q.FAIL_QUEUED, {"detail": "'bad'", "ids": "'{" + ",".join(ids) + "}'"})
        assert _rows_compared_and_removed(doc[0]["Plan"]) == 0

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
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        await _quiet_then_burst(conn)
        ids = [f"q-{n}" for n in range(1, 101)]
        doc = await _generic_plan(conn, q.ISOLATE, {"ids": "'{" + ",".join(ids) + "}'"})
        assert _rows_compared_and_removed(doc[0]["Plan"]) == 0

        async with engine.begin() as c:
            await c.execute(q.ISOLATE, {"ids": [*ids[:3], "paid-1"]})
        isolated = await conn.fetch("SELECT payout_id FROM stellar_payouts WHERE isolate")
        assert sorted(r["payout_id"] for r in isolated) == sorted(ids[:3])
    finally:
        await engine.dispose()
        await conn.close()
