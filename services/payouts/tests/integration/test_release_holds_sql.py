"""`SqlHoldStore.release_holds` in SQL, on PostgreSQL, when its statistics are stale: taken while no payout was held
(a quiet spell), then a burst of holds. The release must stay driven by the ids it was given. Before, its state test
(`state = 'pending_approval'`) let the plan start from the held payouts, and with such statistics PostgreSQL's
generic plan compared every held payout with every id: 117 ms for 500 ids among 20,000 held payouts."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from prizeflow_payouts.adapters.holds_pg import _RELEASE_HOLDS, SqlHoldStore
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit.payouts import seed_payouts
from prizeflow_testkit.plans import array_literal, generic_plan, rows_thrown_away

pytestmark = pytest.mark.integration

_HELD = seed_payouts(
    "pending_approval", hold_code="'kyc_required'", hold_detail="'verification required'", held_at="now()"
)
_PAID = seed_payouts("paid", attempts=1, paid_at="now()", provider_ref="'ref-' || g")


async def test_a_burst_of_holds_after_statistics_saw_none_is_released_by_its_ids(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        # The statistics see 3,000 payouts, every one paid: a quiet spell.
        await conn.execute(_PAID, "paid-", 3000)
        await conn.execute("ANALYZE payouts")
        # Then a burst of holds: 6,000 payouts waiting for their players' verification.
        await conn.execute(_HELD, "held-", 6000)
        ids = [f"held-{n}" for n in range(1, 501)]

        plan = await generic_plan(conn, _RELEASE_HOLDS.text, {"ids": array_literal(ids)})
        # Each id looked up by key: no held payout read and thrown away (the old statement threw away 5,500, each
        # compared with every id).
        assert rows_thrown_away(plan) == 0

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
