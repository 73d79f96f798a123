"""`SqlHoldStore.release_holds` in SQL, on PostgreSQL, when its statistics are stale: taken while no payout was held
(a quiet spell), then a burst of holds. The release must stay driven by the ids it was given. Before, its state test
(`state = 'pending_approval'`) let the plan start from the held payouts, and with such statistics PostgreSQL's
generic plan compared every held payout with every id: 117 ms for 500 ids among 20,000 held payouts."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from prizeflow_payouts.adapters.holds_pg import _RELEASE_HOLDS, SqlHoldStore

pytestmark = pytest.mark.integration

_HELD = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
    "correlation_id, attempts, max_attempts, created_at, updated_at, hold_code, hold_detail, held_at) "
    "SELECT 'held-' || g, 'held-' || g, 'held-' || g, 'h', 'held-' || g, 'p' || (g % 97), 'p', 'USDC', 100, "
    "'sandbox', 'success:p' || (g % 97), 'sandbox', 'sandbox', 'pending_approval', 'auto', 'held-' || g, 0, 3, "
    "now(), now(), 'kyc_required', 'verification required', now() FROM generate_series(1, $1) g"
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


async def _generic_plan(conn: asyncpg.Connection, ids: list[str]) -> Any:
    """The plan the plan cache settles on after a prepared statement's fifth run (the steady state): the statement
    prepared as the driver prepares it, explained generic, in a transaction rolled back."""
    sql = _RELEASE_HOLDS.text.replace(":ids", "$1")
    literal = "'{" + ",".join(ids) + "}'"
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE release_holds AS {sql}")
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE release_holds({literal})")
    finally:
        await tr.rollback()  # nothing of the explained run is kept, the prepared statement with it
    return json.loads(plan) if isinstance(plan, str) else plan


def _rows_compared_and_removed(node: dict[str, Any]) -> int:
    """Rows a scan or join read and then threw away, over all its loops: a rows x ids plan shows here."""
    loops = int(node.get("Actual Loops", 1))
    own = (int(node.get("Rows Removed by Filter", 0)) + int(node.get("Rows Removed by Join Filter", 0))) * loops
    return own + sum(_rows_compared_and_removed(child) for child in node.get("Plans", []))


async def test_a_burst_of_holds_after_statistics_saw_none_is_released_by_its_ids(db: str) -> None:
    conn = await asyncpg.connect(_pg(db))
    engine = create_async_engine(db)
    try:
        # The statistics see 3,000 payouts, every one paid: a quiet spell.
        await conn.execute(_PAID, 3000)
        await conn.execute("ANALYZE payouts")
        # Then a burst of holds: 6,000 payouts waiting for their players' verification.
        await conn.execute(_HELD, 6000)
        ids = [f"held-{n}" for n in range(1, 501)]

        doc = await _generic_plan(conn, ids)
        # Each id looked up by key: no held payout read and thrown away (the old statement threw away 5,500, each
        # compared with every id).
        assert _rows_compared_and_removed(doc[0]["Plan"]) == 0

        async with engine.connect() as c:
            session = AsyncSession(bind=c)
            await SqlHoldStore(session).release_holds([*ids, "paid-1"])
            await session.commit()
        released = await conn.fetchval(
            "SELECT count(*) FROM payouts WHERE id = ANY($1::text[]) AND hold_code IS NULL AND hold_detail IS NULL "
            "AND held_at IS NULL AND state = 'pending_approval'",
            ids,
        )
        assert released == 500
        # The others keep their holds; a paid payout among the ids is not touched.
        assert await conn.fetchval("SELECT count(*) FROM payouts WHERE hold_code = 'kyc_required'") == 5500
        assert await conn.fetchval("SELECT provider_ref FROM payouts WHERE id = 'paid-1'") == "ref-1"
    finally:
        await engine.dispose()
        await conn.close()
