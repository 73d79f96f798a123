"""The gate's window facts in SQL (`SqlHoldStore.gate_facts`): one scan per subject summed per window with FILTER
gives, on random payouts, exactly what one scan per window and sum gave (the statement it replaced, kept here as the
reference), for every window set a policy can have (none, one, three). Five players share four destinations: a
destination's sums are the player's own rows (from the player's scan) and the other players' (`player_id` below and
above the player's, by `payouts_destination_players`, migration 0031), and both must count."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from prizeflow_payouts.adapters.holds_pg import SqlHoldStore
from prizeflow_payouts.application.gate import FactsQuery, WindowFacts
from prizeflow_runtime.db import asyncpg_dsn

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
_COUNTS = "NOT (p.state IN ('cancelled', 'rejected') OR (p.state = 'failed' AND p.finished_at IS NOT NULL))"
# The statement before issue 46 (one correlated scan per window and per sum): the reference.
_REFERENCE = f"""
    WITH r AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS r(id, player_id, dkey, asset)
    ), w AS (SELECT unnest($5::int[]) AS s)
    SELECT r.id, w.s,
        (SELECT coalesce(sum(p.amount), 0) FROM payouts p
          WHERE p.player_id = r.player_id AND p.asset = r.asset AND p.id <> r.id AND {_COUNTS}
            AND p.created_at > $6::timestamptz - make_interval(secs => w.s)) AS player_total,
        (SELECT count(*) FROM payouts p
          WHERE p.player_id = r.player_id AND p.id <> r.id AND {_COUNTS}
            AND p.created_at > $6::timestamptz - make_interval(secs => w.s)) AS player_count,
        (SELECT coalesce(sum(p.amount), 0) FROM payouts p
          WHERE p.destination_key = r.dkey AND p.asset = r.asset AND p.id <> r.id AND {_COUNTS}
            AND p.created_at > $6::timestamptz - make_interval(secs => w.s)) AS destination_total,
        NULL::timestamptz AS first_used_at
    FROM r CROSS JOIN w
    UNION ALL
    SELECT r.id, NULL, NULL, NULL, NULL,
        (SELECT min(p.created_at) FROM payouts p
          WHERE p.player_id = r.player_id AND p.destination_key = r.dkey AND p.id <> r.id AND {_COUNTS})
    FROM r
"""
_INSERT = (
    "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "
    "asset, amount, destination_type, destination_address, provider_type, provider_name, state, "
    "approval_policy, correlation_id, attempts, max_attempts, created_at, updated_at) "
    "VALUES ($1, $1, $1, 'h', $1, $2, $2, $3, $4, 'sandbox', $5, 'sandbox', 'sandbox', $6, 'auto', "
    "$1, 0, 3, $7, $7)"
)

# A's payout, inserted in A's transaction (the session the lock was taken on).
_NAMED_INSERT = (
    _INSERT.replace("$1", ":id")
    .replace("$2", ":player")
    .replace("$3", "'USDC'")
    .replace("$4", ":amount")
    .replace("$5", ":address")
    .replace("$6", "'approved'")
    .replace("$7", ":at")
)


async def _reference(conn: asyncpg.Connection, queries: list[FactsQuery], windows: list[int]) -> dict[str, WindowFacts]:
    rows = await conn.fetch(
        _REFERENCE,
        [q.payout_id for q in queries],
        [q.player_id for q in queries],
        [q.destination_key for q in queries],
        [q.asset for q in queries],
        windows,
        NOW,
    )
    totals: dict[str, dict[int, int]] = {q.payout_id: {} for q in queries}
    counts: dict[str, dict[int, int]] = {q.payout_id: {} for q in queries}
    dest: dict[str, dict[int, int]] = {q.payout_id: {} for q in queries}
    first: dict[str, datetime | None] = {}
    for r in rows:
        if r["s"] is None:
            first[r["id"]] = r["first_used_at"]
            continue
        totals[r["id"]][int(r["s"])] = int(r["player_total"])
        counts[r["id"]][int(r["s"])] = int(r["player_count"])
        dest[r["id"]][int(r["s"])] = int(r["destination_total"])
    return {
        q.payout_id: WindowFacts(totals[q.payout_id], counts[q.payout_id], dest[q.payout_id], first.get(q.payout_id))
        for q in queries
    }


async def test_one_scan_per_subject_gives_what_one_scan_per_window_gave(db: str) -> None:
    rng = random.Random(46)
    players = [f"p{n}" for n in range(5)]
    addresses = [f"success:d{n}" for n in range(4)]
    states = ["approved", "pending_approval", "cancelled", "rejected", "approved", "approved"]
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        for n in range(240):
            await conn.execute(
                _INSERT,
                f"po-{n}",
                rng.choice(players),
                rng.choice(["USDC", "XLM"]),
                rng.randrange(1, 10_000),
                rng.choice(addresses),
                rng.choice(states),
                NOW - timedelta(seconds=rng.randrange(0, 40 * 86_400)),
            )
        keys = {
            r["destination_address"]: r["destination_key"]
            for r in await conn.fetch("SELECT DISTINCT destination_address, destination_key FROM payouts")
        }
        assert len(keys) == len(addresses)
        queries = [
            FactsQuery(
                f"po-{n}" if n % 2 else f"new-{n}",  # stored ones leave themselves out of their sums
                rng.choice(players),
                keys[rng.choice(addresses)],
                rng.choice(["USDC", "XLM"]),
            )
            for n in range(40)
        ]
        engine = create_async_engine(db)
        try:
            for windows in ([3600, 86_400, 30 * 86_400], [86_400], [30 * 86_400, 3600], []):
                expected = await _reference(conn, queries, windows)
                async with engine.connect() as session_conn, AsyncSession(bind=session_conn) as session:
                    got = await SqlHoldStore(session).gate_facts(queries, windows, now=NOW, lock=False)
                assert got == expected, windows
                if windows:
                    assert any(f.player_totals[max(windows)] for f in got.values()), "the sample sums something"
        finally:
            await engine.dispose()
    finally:
        await conn.close()


async def test_a_request_to_a_destination_another_players_request_holds_waits_and_counts_it(db: str) -> None:
    """The request's lock covers destinations as well as players: player B's request to the destination of player
    A's request, while A's transaction is still open, waits for A's commit and then counts A's payout in the
    destination's sum — two players cannot both pass a destination limit the sum of their payouts breaks, which is
    what lets an allow under a destination limit stand at send."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    engine = create_async_engine(db)
    try:
        await conn.execute(_INSERT, "seed", "p0", "USDC", 7, "success:shared", "approved", NOW - timedelta(hours=1))
        key = await conn.fetchval("SELECT destination_key FROM payouts WHERE id = 'seed'")
        async with engine.connect() as ca, engine.connect() as cb:
            first, second = AsyncSession(bind=ca), AsyncSession(bind=cb)
            facts = await SqlHoldStore(first).gate_facts(
                [FactsQuery("po-a", "pa", key, "USDC")], [86_400], now=NOW, lock=True
            )
            assert facts["po-a"].destination_totals == {86_400: 7}
            await first.execute(
                text(_NAMED_INSERT),
                {"id": "po-a", "player": "pa", "amount": 500, "address": "success:shared", "at": NOW},
            )
            waiting = asyncio.create_task(
                SqlHoldStore(second).gate_facts([FactsQuery("po-b", "pb", key, "USDC")], [86_400], now=NOW, lock=True)
            )
            for _ in range(200):
                if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the second request never waited on the first's lock")
            assert not waiting.done()
            await first.commit()
            got = await asyncio.wait_for(waiting, 10)
            await second.rollback()
        assert got["po-b"].destination_totals == {86_400: 7 + 500}
    finally:
        await engine.dispose()
        await conn.close()


async def test_a_shared_destinations_history_before_the_window_is_not_read(db: str) -> None:
    """The other players' rows to a destination are read by (destination, time, player): bounded by the window, the
    player tested on the index entries. Keyed (destination, player, time) instead, each request to an exchange's
    deposit address many players share would read that address's whole history, under its lock (a review finding
    on the first form of 0031). The sums count the window only."""
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        columns = await conn.fetchval(
            "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i "
            "JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
            "WHERE i.indexrelid = 'payouts_destination_players'::regclass"
        )
        assert columns == ["destination_key", "created_at", "player_id"]
        for n in range(30):  # long ago, outside the longest window
            await conn.execute(
                _INSERT, f"old-{n}", f"p{n}", "USDC", 1_000, "success:exchange", "approved", NOW - timedelta(days=90)
            )
        await conn.execute(
            _INSERT, "recent", "p7", "USDC", 40, "success:exchange", "approved", NOW - timedelta(hours=2)
        )
        await conn.execute(_INSERT, "mine", "p3", "USDC", 2, "success:exchange", "approved", NOW - timedelta(hours=1))
        key = await conn.fetchval("SELECT destination_key FROM payouts WHERE id = 'recent'")
        engine = create_async_engine(db)
        try:
            async with engine.connect() as session_conn, AsyncSession(bind=session_conn) as session:
                got = await SqlHoldStore(session).gate_facts(
                    [FactsQuery("new-1", "p3", key, "USDC")], [3600 * 3, 30 * 86_400], now=NOW, lock=False
                )
        finally:
            await engine.dispose()
        facts = got["new-1"]
        assert facts.destination_totals == {3600 * 3: 42, 30 * 86_400: 42}  # the player's own and p7's, not the old
        assert facts.player_totals == {3600 * 3: 2, 30 * 86_400: 2}
        assert facts.first_used_at == NOW - timedelta(days=90)  # p3's first use is its own old payout
    finally:
        await conn.close()
