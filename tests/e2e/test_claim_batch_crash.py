"""Rewards SIGKILLed while a batch of claims is being decided (issue 32: "a replica killed mid-batch").

Claims share a group commit: many requests in one transaction. A crash in the middle loses the transaction and
every answer not yet sent, never a reservation that was answered and never one twice: the players' retries with
the same Idempotency-Key, against the restarted process, each end with one claim, the one the first answer named
when there was one; each wallet is down by exactly its claim and the ledger still balances.

The kill is made to land mid-batch, not by timing: the test inserts, and keeps uncommitted, the first use of the
held player's destination, which that player's claim writes too, so the batch in flight waits inside its
transaction (seen in pg_stat_activity) with every claim sent after it queued for the next, when rewards is killed.
(A held wallet or clearing account no longer does: a batch waits for no account; it takes the wallets and one
clearing shard that no other transaction holds.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import asyncpg
import httpx
import pytest
from support import USDC, Api, claim, ledger_invariants, top_up, uid, wait_for

from prizeflow_contracts.providers import PayoutDestination, destination_key
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import fetch

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ANSWERED_FIRST = 20  # claims answered before the crash
IN_FLIGHT = 60  # claims sent while the batch is held, the held player's first


def destination(player: str) -> dict[str, str]:
    return {"type": "sandbox", "address": f"success:{player}"}


async def retried(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """A connection the killed process held may still sit in the client's pool: one more try on a fresh one."""
    for _ in range(3):
        try:
            return await send()
        except httpx.TransportError:
            continue
    return await send()


async def test_a_crash_mid_batch_loses_no_answered_claim_and_the_retries_make_none_twice(
    platform: Platform, api: Api
) -> None:
    db = platform.procs["rewards"].database_url
    assert db is not None
    players = [uid("crash-player") for _ in range(ANSWERED_FIRST + IN_FLIGHT)]
    for player in players:
        await top_up(api, player, 10 * USDC)
    keys = {player: uid("crash-claim") for player in players}
    answered: dict[str, str] = {}  # player -> the claim id its first answer named
    outcomes: Counter[str] = Counter()

    async def first_try(player: str) -> None:
        try:
            response = await claim(api, player, USDC, destination(player), key=keys[player])
        except httpx.TransportError as err:  # the process died with the request in flight
            outcomes[f"lost: {type(err).__name__}"] += 1
            return
        assert response.status_code == 201, response.text
        answered[player] = response.json()["claim_id"]
        outcomes["201"] += 1

    early, later = players[:ANSWERED_FIRST], players[ANSWERED_FIRST:]
    held = later[0]
    await asyncio.gather(*(first_try(p) for p in early))
    assert set(answered) == set(early), dict(outcomes)

    async def lock_waits() -> int:
        rows = await fetch(
            db,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND state = 'active' AND query ILIKE '%payout_destinations%'",
        )
        return int(rows[0]["n"])

    blocker = await asyncpg.connect(asyncpg_dsn(db))
    try:
        holding = blocker.transaction()
        await holding.start()
        try:
            await blocker.execute(
                "INSERT INTO payout_destinations (player_id, destination_key, first_seen_at) VALUES ($1, $2, now())",
                held,
                destination_key(PayoutDestination.model_validate(destination(held))),
            )
            sent = [asyncio.create_task(first_try(held))]
            await wait_for(lock_waits, lambda n: n >= 1, timeout=30)  # its batch waits inside its transaction
            sent += [asyncio.create_task(first_try(p)) for p in later[1:]]
            await asyncio.to_thread(platform.kill, "rewards")
            await asyncio.gather(*sent)
        finally:
            await holding.rollback()  # the killed batch's backend goes on, finds its client gone and rolls back
        await wait_for(lock_waits, lambda n: n == 0, timeout=30)
        # The held batch never committed: not even the claim of the player it was deciding.
        assert await fetch(db, "SELECT id FROM claims WHERE player_id = $1", held) == []
        lost = sum(n for outcome, n in outcomes.items() if outcome.startswith("lost"))
        assert held not in answered, dict(outcomes)
        assert lost >= 1, dict(outcomes)
        assert outcomes["201"] + lost == len(players), dict(outcomes)
    finally:
        await blocker.close()
        if not platform.procs["rewards"].alive:  # never leave the session's platform without rewards
            await asyncio.to_thread(platform.restart, "rewards")

    # Every player retries with the same key (as a client must when its answer was lost): one claim each.
    final: dict[str, str] = {}
    for player in players:
        response = await retried(partial(claim, api, player, USDC, destination(player), key=keys[player]))
        assert response.status_code == 201, response.text
        final[player] = response.json()["claim_id"]
    for player, claim_id in answered.items():
        assert final[player] == claim_id, f"{player}: answered {claim_id} before the crash, {final[player]} after"

    rows = await fetch(db, "SELECT player_id, count(*) AS n FROM claims WHERE player_id = ANY($1) GROUP BY 1", players)
    assert {r["player_id"]: r["n"] for r in rows} == dict.fromkeys(players, 1)

    async def balances() -> list[int]:
        return [await api.available(p) for p in players]

    # Each wallet is down by its one claim (reserved, whatever happens to the payout after).
    await wait_for(balances, lambda b: all(v == 9 * USDC for v in b), timeout=30)
    await ledger_invariants(platform)
