"""A claim request is answered by what its intake transaction actually committed (issue 43), on real PostgreSQL
and Kafka, through the HTTP API:

- one Idempotency-Key sent for USDC to one replica and for XLM to another at the same moment is one claim: the
  loser's requests (the first and its duplicates in the same batch) get `409 idempotency_key_reused`, read from
  the claim the winner committed, never a 201 for a claim that does not exist or a detail naming ledger ids;
- two claims of one batch that would take the clearing account's pending counter past int64: the second is
  `422 amount_out_of_range`, and so is its duplicate under the same key (never a 201 for a claim never written);
- a COMMIT whose connection is lost after the server committed is answered by what the database holds (201 for
  the claims it wrote), one lost before the server saw it by 503 (nothing was written).

The service runs as processes (the in-process test client serves one request at a time). Batches are formed on
purpose: a test connection inserts, and keeps uncommitted, the first use of a destination that a blocker's claim
uses for the first time, so the batch in flight waits on it (a batch waits for no account: it takes its clearing
shard and wallets without waiting) while the requests that follow queue for the next one
(`prizeflow_rewards_claim_intake_waiting` says when they have).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from stellar_sdk import Keypair

from prizeflow_contracts.providers import DestinationType, PayoutDestination, destination_key
from prizeflow_rewards.application.claims import claim_id_for
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.db import holding, lock_waits
from prizeflow_testkit.pg_proxy import pg_proxy
from prizeflow_testkit.rewards import STELLAR_KEY, RewardsReplica, claim_intake_waiting, serving_replicas

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}
DEST_KEY = destination_key(PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=STELLAR_KEY))
# A blocker's destination, used for the first time by its claim.
BLOCKER_ADDRESS = Keypair.from_raw_ed25519_seed(bytes([7]) * 32).public_key
BLOCKER_DEST = {"type": "stellar_account", "address": BLOCKER_ADDRESS}
BLOCKER_KEY = destination_key(PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=BLOCKER_ADDRESS))
INT64_MAX = 2**63 - 1
# What names ledger internals: a transfer's business key, a claim or transfer id.
INTERNAL = re.compile(r"claim_reserve|cl-[0-9a-f-]{8}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hold_first_use(database_url: str, player: str, key: str = BLOCKER_KEY) -> AbstractAsyncContextManager[None]:
    """The player's first use of a destination inserted by a transaction of the test's own, uncommitted until the
    block ends: a batch writing that first use waits for it (`payout_destinations`)."""
    return holding(
        database_url,
        "INSERT INTO payout_destinations (player_id, destination_key, first_seen_at) VALUES ($1, $2, now())",
        player,
        key,
    )


async def until_waiting(database_url: str, like: str, n: int = 1) -> None:
    await eventually(lambda: lock_waits(database_url, like), lambda w: w >= n, timeout=30, interval=0.05)


def later(call: Awaitable[httpx.Response]) -> asyncio.Task[httpx.Response]:
    return asyncio.ensure_future(call)


def claim(amount: int, asset: str = "USDC", destination: dict[str, str] = DEST) -> dict[str, Any]:
    return {"asset": asset, "amount": amount, "destination": destination}


# --- one key, two replicas, two assets ------------------------------------------------------------------------

OPEN_CLAIMS = {
    "REWARDS_MIN_CLAIM": json.dumps({"USDC": 1, "XLM": 1}),
    "REWARDS_DAILY_CLAIM_LIMIT": json.dumps({"USDC": INT64_MAX, "XLM": INT64_MAX}),
    "REWARDS_REVIEW_THRESHOLD": json.dumps({"USDC": INT64_MAX, "XLM": INT64_MAX}),
    "REWARDS_VELOCITY_MAX_CLAIMS": "1000000",
    "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0",
    "REWARDS_REJECTION_RATE_MIN_CLAIMS": "1000000",
}


def ask(
    replica: RewardsReplica,
    player: str,
    key: str,
    amount: int,
    asset: str = "USDC",
    destination: dict[str, str] = DEST,
) -> asyncio.Task[httpx.Response]:
    headers = {**replica.player(player), "Idempotency-Key": key}
    return later(replica.client.post("/claims/", json=claim(amount, asset, destination), headers=headers))


async def queued(replica: RewardsReplica, n: int) -> None:
    await eventually(lambda: claim_intake_waiting(replica.client), lambda w: w == n, timeout=30, interval=0.02)


@pytest.mark.timeout(300)
async def test_one_key_raced_on_two_replicas_in_two_assets_is_one_claim_and_every_answer_reads_it(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    async with serving_replicas(
        2,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_suffix=topic_suffix,
        workdir=tmp_path,
        env=OPEN_CLAIMS,
    ) as (a, b):
        await a.top_up("p", "USDC", 10_000)
        await a.top_up("p", "XLM", 10_000)
        await a.top_up("q", "XLM", 10_000)
        first = await ask(b, "q", "q-0", 100, "XLM")  # the XLM clearing account exists from here
        assert first.status_code == 201, first.text
        claim_id = claim_id_for("p", "K")

        # B's batch in flight waits on q's first use of another destination (held here), so B's two requests under
        # K queue and form the next batch together. A's USDC request under K writes its reservation and its claim,
        # then waits (before its COMMIT) on a destination row this test inserted and has not committed.
        async with hold_first_use(database_url, "p", DEST_KEY):
            async with hold_first_use(database_url, "q"):
                blocker = ask(b, "q", "q-1", 100, "XLM", BLOCKER_DEST)
                await until_waiting(database_url, "payout_destinations")
                xlm = [ask(b, "p", "K", 1_000, "XLM") for _ in range(2)]
                await queued(b, 2)
                usdc = ask(a, "p", "K", 1_000)
                await until_waiting(database_url, "payout_destinations", 2)
            # B's batch of two decides K is new (A has not committed) and waits on A's reservation; then A commits.
            assert (await blocker).status_code == 201
            await until_waiting(database_url, "ledger_transfers")
        answers = [await t for t in xlm]
        won = await usdc
        shown = await b.client.get(f"/claims/{claim_id}", headers=b.player("p"))
        again = await ask(b, "p", "K", 1_000)

    assert won.status_code == 201, won.text
    assert (won.json()["claim_id"], won.json()["asset"], won.json()["created"]) == (claim_id, "USDC", True)
    # Both the first request under K on B and its duplicate in the same batch.
    lost = [(r.status_code, r.json().get("code"), r.json().get("asset")) for r in answers]
    assert lost == [(409, "idempotency_key_reused", None)] * 2, [r.text for r in answers]
    assert not any(INTERNAL.search(r.json()["detail"]) for r in answers), [r.text for r in answers]
    assert shown.status_code == 200
    assert shown.json()["asset"] == "USDC"
    assert again.status_code == 201, again.text
    assert (again.json()["claim_id"], again.json()["created"]) == (claim_id, False)
    rows = await fetch(database_url, "SELECT id, asset FROM claims WHERE player_id = 'p'")
    assert [(r["id"], r["asset"]) for r in rows] == [(claim_id, "USDC")]
    pending = await fetch(
        database_url, "SELECT asset, debits_pending FROM ledger_accounts WHERE owner_id = 'p' ORDER BY asset"
    )
    assert [(r["asset"], r["debits_pending"]) for r in pending] == [("USDC", 1_000), ("XLM", 0)]


# --- a counter past int64 -------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_a_batch_taking_the_clearing_counter_past_int64_refuses_the_claim_and_its_duplicate_alike(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    huge = 2**62
    async with serving_replicas(
        1,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_suffix=topic_suffix,
        workdir=tmp_path,
        env=OPEN_CLAIMS,
    ) as (app,):
        for player, provider in (("p1", "stripe"), ("p2", "bank"), ("p0", "cash")):
            await app.top_up(player, "USDC", INT64_MAX, provider=provider)
        assert (await ask(app, "p0", "k0", 10)).status_code == 201  # the clearing account exists from here
        async with hold_first_use(database_url, "p0"):
            blocker = ask(app, "p0", "k0b", 10, destination=BLOCKER_DEST)
            await until_waiting(database_url, "payout_destinations")
            # Queued in this order (the batch decides in arrival order): p1's claim first, then p2's and its repeat.
            batch = [ask(app, "p1", "k1", huge)]
            await queued(app, 1)
            batch += [ask(app, "p2", "k2", huge), ask(app, "p2", "k2", huge)]
            await queued(app, 3)
        assert (await blocker).status_code == 201
        one, two, duplicate = [await t for t in batch]
        refused_id = claim_id_for("p2", "k2")
        shown = await app.client.get(f"/claims/{refused_id}", headers=app.player("p2"))
        wallet = await app.client.get("/wallets/p2", headers=app.admin)

    assert one.status_code == 201, one.text
    # The duplicate gets the answer of the request it repeats.
    refused = [(r.status_code, r.json().get("code"), r.json().get("claim_id")) for r in (two, duplicate)]
    assert refused == [(422, "amount_out_of_range", None)] * 2, [two.text, duplicate.text]
    assert not any(INTERNAL.search(r.json()["detail"]) for r in (two, duplicate)), [two.text, duplicate.text]
    assert shown.status_code == 404
    assert {b["asset"]: b["balance"] for b in wallet.json()["balances"]} == {"USDC": INT64_MAX}
    assert await fetch(database_url, "SELECT id FROM claims WHERE player_id = 'p2'") == []


# --- a COMMIT whose connection is lost ------------------------------------------------------------------------


@pytest.mark.timeout(240)
async def test_a_commit_whose_connection_is_lost_is_answered_by_what_the_database_holds(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    players = [f"a{i}" for i in range(5)]
    async with (
        pg_proxy(database_url) as proxy,
        serving_replicas(
            1,
            database_url=proxy.url(database_url),
            kafka_bootstrap=kafka_bootstrap,
            topic_suffix=topic_suffix,
            workdir=tmp_path,
            env=OPEN_CLAIMS,
        ) as (app,),
    ):
        for p in players:
            await app.top_up(p, "USDC", 10_000)
        assert (await ask(app, "a0", "first", 1_000)).status_code == 201  # the clearing account exists from here
        # The batch of four loses its connection once the server has committed it. a0's claim to a destination it
        # uses for the first time is the batch in flight that the four queue behind (it wrote its claim before it
        # waits: the drop is armed after, so it is the next batch's).
        async with hold_first_use(database_url, "a0"):
            blocker = ask(app, "a0", "z", 1_000, destination=BLOCKER_DEST)
            await until_waiting(database_url, "payout_destinations")
            proxy.drop_commit("INSERT INTO claims", after=True)
            batch = [ask(app, p, f"k-{p}", 1_000) for p in players[1:]]
            await queued(app, 4)
        assert (await blocker).status_code == 201
        committed = [await t for t in batch]
        assert proxy.dropped.is_set()
        shown = [
            await app.client.get(f"/claims/{claim_id_for(p, f'k-{p}')}", headers=app.player(p)) for p in players[1:]
        ]

        # Lost before the server saw the COMMIT: nothing was written, and the answer says so.
        proxy.drop_commit("INSERT INTO claims", after=False)
        lost = await ask(app, "a0", "lost", 1_000)
        assert proxy.dropped.is_set()
        absent = await app.client.get(f"/claims/{claim_id_for('a0', 'lost')}", headers=app.player("a0"))
        retried = await ask(app, "a0", "lost", 1_000)

    assert [r.status_code for r in committed] == [201] * 4, [r.text for r in committed]
    assert all(r.json()["created"] for r in committed)
    assert [r.status_code for r in shown] == [200] * 4
    assert lost.status_code == 503, lost.text
    assert absent.status_code == 404
    assert retried.status_code == 201, retried.text
    assert retried.json()["created"] is True
    rows = await fetch(database_url, "SELECT player_id FROM claims ORDER BY player_id, created_at")
    assert [r["player_id"] for r in rows] == ["a0", "a0", "a0", "a1", "a2", "a3", "a4"]  # a0: first, the blocker, lost
