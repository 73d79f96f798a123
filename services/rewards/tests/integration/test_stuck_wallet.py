"""One player's row held by another transaction past the lock timeout delays nobody else's claims (issue 43):
through the HTTP API of the service as a process, on real PostgreSQL, with a short lock timeout, a test connection
holds one player's wallet (`SELECT … FOR UPDATE`), or their verification lock as a verification change takes it,
while 36 claims arrive at once (the stuck player's 4, one each of 32 others). Every other player's claim is
answered 201 within one lock timeout; the stuck player's get 503 `database_timeout` (their lock wait ran past its
limit; nothing was written) and, once the row is let go, a claim of theirs goes through.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from prizeflow_rewards.domain import accounts
from prizeflow_testkit import fetch
from prizeflow_testkit.db import holding
from prizeflow_testkit.rewards import STELLAR_KEY, serving_replicas

pytestmark = pytest.mark.integration

LOCK_TIMEOUT_S = 2.0
DEST = {"type": "stellar_account", "address": STELLAR_KEY}
ENV = {
    "DATABASE_LOCK_TIMEOUT_MS": str(int(LOCK_TIMEOUT_S * 1000)),
    "DATABASE_STATEMENT_TIMEOUT_MS": str(int(LOCK_TIMEOUT_S * 4000)),
    "REWARDS_MIN_CLAIM": json.dumps({"USDC": 1}),
    "REWARDS_VELOCITY_MAX_CLAIMS": "1000000",
    "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0",
}


STUCK = "stuck"
HOLDS = {
    "wallet": ("SELECT 1 FROM ledger_accounts WHERE id = $1 FOR UPDATE", accounts.wallet(STUCK, "USDC").id),
    "verification": ("SELECT pg_advisory_xact_lock(hashtextextended('prizeflow:verification:' || $1, 0))", STUCK),
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("held", sorted(HOLDS))
async def test_a_stuck_player_delays_nobody_elses_claims(
    held: str, database_url: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    stuck, others = STUCK, [f"o{i:02}" for i in range(32)]
    async with serving_replicas(
        1,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_suffix=topic_suffix,
        workdir=tmp_path,
        env=ENV,
    ) as (app,):
        for player in (stuck, *others):
            await app.top_up(player, "USDC", 10_000)

        async def timed(player: str, key: str) -> tuple[str, httpx.Response, float]:
            started = time.monotonic()
            r = await app.client.post(
                "/claims/",
                json={"asset": "USDC", "amount": 100, "destination": DEST},
                headers={**app.player(player), "Idempotency-Key": key},
            )
            return player, r, time.monotonic() - started

        async with holding(database_url, *HOLDS[held]):
            answers = await asyncio.gather(
                *(timed(stuck, f"s-{i}") for i in range(4)), *(timed(p, f"c-{p}") for p in others)
            )
        after = await timed(stuck, "s-after")

    mine = [(r.status_code, r.json()["code"]) for p, r, _ in answers if p == stuck]
    theirs = [(p, r.status_code, round(s, 2)) for p, r, s in answers if p != stuck]
    assert [status for _, status, _ in theirs] == [201] * len(others), theirs
    slow = [(p, s) for p, _, s in theirs if s >= LOCK_TIMEOUT_S]
    assert not slow, f"answered after the lock timeout ({LOCK_TIMEOUT_S}s): {slow}"
    assert mine == [(503, "database_timeout")] * 4, mine
    assert after[1].status_code == 201, after[1].text
    rows = await fetch(database_url, "SELECT count(*) FROM claims WHERE player_id = $1", stuck)
    assert rows[0][0] == 1
