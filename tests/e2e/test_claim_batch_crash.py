"""Rewards SIGKILLed while a batch of claims is being decided (issue 32: "a replica killed mid-batch").

Claims share a group commit: many requests in one transaction. A crash in the middle loses the transaction and
every answer not yet sent, never a reservation that was answered and never one twice: the players' retries with
the same Idempotency-Key, against the restarted process, each end with one claim, the one the first answer named
when there was one; each wallet is down by exactly its claim and the ledger still balances.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial

import httpx
import pytest
from support import USDC, Api, claim, ledger_invariants, top_up, uid, wait_for

from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PLAYERS = 160
ANSWERED_BEFORE_THE_KILL = 20
IN_FLIGHT = 32


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
    players = [uid("crash-player") for _ in range(PLAYERS)]
    for player in players:
        await top_up(api, player, 10 * USDC)
    keys = {player: uid("crash-claim") for player in players}
    answered: dict[str, str] = {}  # player -> the claim id its first answer named
    outcomes: Counter[str] = Counter()
    # Requests keep arriving while batches commit (at most IN_FLIGHT at once), so that the kill lands with a
    # batch open and requests waiting for the next one.
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def first_try(player: str) -> None:
        async with slots:
            if not platform.procs["rewards"].alive:
                outcomes["not sent"] += 1
                return
            try:
                response = await claim(api, player, USDC, destination(player), key=keys[player])
            except httpx.TransportError as err:  # the process died with the request in flight
                outcomes[f"lost: {type(err).__name__}"] += 1
                return
        if response.status_code == 201:
            answered[player] = response.json()["claim_id"]
            if len(answered) == ANSWERED_BEFORE_THE_KILL:
                platform.kill("rewards")  # at once, in the loop: every other request is in flight or queued
        outcomes[str(response.status_code)] += 1

    await asyncio.gather(*(first_try(p) for p in players))
    lost = sum(n for outcome, n in outcomes.items() if outcome.startswith("lost"))
    assert lost > 0, f"the kill cut no request in flight, so it proved nothing: {dict(outcomes)}"
    assert outcomes["201"] == len(answered) >= ANSWERED_BEFORE_THE_KILL, dict(outcomes)
    assert outcomes["201"] + lost + outcomes["not sent"] == PLAYERS, dict(outcomes)
    await asyncio.to_thread(platform.restart, "rewards")

    # Every player retries with the same key (as a client must when its answer was lost): one claim each.
    final: dict[str, str] = {}
    for player in players:
        response = await retried(partial(claim, api, player, USDC, destination(player), key=keys[player]))
        assert response.status_code == 201, response.text
        final[player] = response.json()["claim_id"]
    for player, claim_id in answered.items():
        assert final[player] == claim_id, f"{player}: answered {claim_id} before the crash, {final[player]} after"

    db = platform.procs["rewards"].database_url
    assert db is not None
    rows = await fetch(db, "SELECT player_id, count(*) AS n FROM claims WHERE player_id = ANY($1) GROUP BY 1", players)
    assert {r["player_id"]: r["n"] for r in rows} == dict.fromkeys(players, 1)

    async def balances() -> list[int]:
        return [await api.available(p) for p in players]

    # Each wallet is down by its one claim (reserved, whatever happens to the payout after).
    await wait_for(balances, lambda b: all(v == 9 * USDC for v in b), timeout=30)
    await ledger_invariants(platform)
