"""The exception queue's chains on real PostgreSQL (migration 0024): what the database refuses whatever the code does.
Each exception of a difference claims exactly the money the ones before it do not; what it is about never changes;
the previous release's insert (one exception per (provider, kind, subject)) still works during a rolling upgrade."""

from __future__ import annotations

import asyncpg
import pytest

from prizeflow_runtime.db import asyncpg_dsn

pytestmark = pytest.mark.integration

# What the previous release inserts: no about, link or absorbed; its key is (provider, kind, subject).
_PREVIOUS_RELEASE = (
    "INSERT INTO recon_exceptions (provider, kind, subject, severity, run_id, payout_id, asset, amount, detail,"
    " correlation_id, opened_at, updated_at)"
    " VALUES ('rail', 'unrecorded_reversal', 'payout:po-1', 'high', 'run-1', 'po-1', 'USD', $1, 'd', 'c', now(), now())"
    " ON CONFLICT (provider, kind, subject) DO NOTHING RETURNING id"
)
_LINK = (
    "INSERT INTO recon_exceptions (provider, kind, subject, about, link, absorbed, severity, run_id, payout_id, asset,"
    " amount, detail, correlation_id, opened_at, updated_at)"
    " VALUES ('rail', 'unrecorded_reversal', $1, 'payout:po-1', $2, $3, 'high', 'run-1', 'po-1', 'USD', $4, 'd', 'c',"
    " now(), now()) ON CONFLICT DO NOTHING RETURNING id"
)


async def test_each_link_claims_exactly_what_its_chain_does_not_hold(db: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        await conn.execute(
            "INSERT INTO recon_runs (id, provider, since, until, requested_by, started_at)"
            " VALUES ('run-1', 'rail', now() - interval '2 hours', now() - interval '1 hour', 't', now())"
        )
        first = await conn.fetchval(_PREVIOUS_RELEASE, 4_000)
        assert first is not None
        assert await conn.fetchval(_PREVIOUS_RELEASE, 4_000) is None  # found again: nothing
        row = await conn.fetchrow("SELECT about, link, absorbed FROM recon_exceptions WHERE id = $1", first)
        assert tuple(row) == ("payout:po-1", 0, 0)  # the previous release's row is its chain's first link

        refused = {
            "claims what the first link holds": ("payout:po-1#1", 1, 0, 6_000),
            "skips a link": ("payout:po-1#2", 2, 4_000, 6_000),
            "is named as another link": ("payout:po-1#7", 1, 4_000, 6_000),
        }
        for why, args in refused.items():
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.fetchval(_LINK, *args)
                pytest.fail(why)
        with pytest.raises(asyncpg.CheckViolationError, match="recon_exceptions_chain_money"):
            await conn.fetchval(_LINK, "payout:po-1#1", 1, 4_000, 0)  # a later link is money

        second = await conn.fetchval(_LINK, "payout:po-1#1", 1, 4_000, 6_000)
        assert second is not None
        assert await conn.fetchval(_LINK, "payout:po-1#1", 1, 4_000, 6_000) is None  # found again: nothing
        assert await conn.fetchval(_PREVIOUS_RELEASE, 4_000) is None

        for change in ("about = 'payout:po-2'", "link = 5", "absorbed = 0"):
            with pytest.raises(asyncpg.CheckViolationError, match="never changes"):
                await conn.execute(f"UPDATE recon_exceptions SET {change} WHERE id = $1", second)
        await conn.execute(
            "UPDATE recon_exceptions SET state = 'resolved', resolution = 'acknowledge', resolution_reason = 'r',"
            " resolved_by = ARRAY['olga'], resolved_at = now() WHERE id = $1",
            first,
        )
        with pytest.raises(asyncpg.CheckViolationError, match="never moves again"):
            await conn.execute("UPDATE recon_exceptions SET absorbed = 1 WHERE id = $1", first)
    finally:
        await conn.close()
