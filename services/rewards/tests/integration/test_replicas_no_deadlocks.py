"""Three rewards replicas (separate processes, one database, one consumer group per consumer) under a storm of
concurrent money movements on shared accounts, on real PostgreSQL and Kafka:

- players claim from shared wallets through every replica at once (some claims are held, and ops release or
  reject them while the others run);
- payouts' outcomes (created, paid, failed for good, returned) flow back through Kafka for every request;
- settlement's decisions flow in at the same time: sponsored rounds paying the same wallets from two pools,
  wallet-paid entry fees, entry-pot rounds with fee revenue, voided rounds refunding their entries;
- admins top wallets up, fund the pools and release held rounds meanwhile.

PostgreSQL must report zero deadlocks for the database (`pg_stat_database.deadlocks`, read once every
replica's backend has exited, so each detected deadlock is flushed to the counter), the API must answer no
5xx, nothing may be dead-lettered, and the money must add up: per asset the balances sum to zero, no flagged
account is negative, each claim's reservation is resolved exactly once, every wallet holds what the test
moved into and out of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.payouts import (
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRequested,
    PayoutReturned,
)
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled, RoundVoided
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS, SETTLEMENT_ROUNDS
from prizeflow_devstack.ports import pick_free_port
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit import Process, eventually, provision_test_topics, stop_all, wait_caught_up
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import ROUTES, STELLAR_KEY, routes_event

pytestmark = pytest.mark.integration

REPLICAS = 3
PLAYERS = [f"dl-p{i}" for i in range(6)]
CAMPAIGNS = ["dl-camp-1", "dl-camp-2"]
CLAIMS = 240
CLAIM_CONCURRENCY = 24
HELD_AMOUNT = 60_000  # above the review threshold below: held for ops
SPONSORED_ROUNDS = 36
POT_ROUNDS = 8
VOIDED_ROUNDS = 8
ENTRY_FEE = 500
TOP_UP = 50_000_000
STORM_DEADLINE_S = 400
DEST = {"type": "stellar_account", "address": STELLAR_KEY}


@dataclass
class Replica:
    index: int
    port: int
    log: Path
    process: Process
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        # A kept-alive connection expires here before uvicorn's 5 s keep-alive closes it on the server's side: a
        # request sent on a connection the server is closing at that moment fails with ReadError.
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=60.0, limits=httpx.Limits(keepalive_expiry=2.0)
        )


def _errors_logged(replicas: list[Replica]) -> str:
    """Every ERROR record the replicas logged (a 5xx's traceback is there, not in its answer)."""
    lines = [
        f"--- replica {r.index}: {line}"
        for r in replicas
        for line in r.log.read_text().splitlines()
        if '"level": "ERROR"' in line
    ]
    return "\n".join(lines[-20:])


@dataclass
class Storm:
    """What the test did and saw: every HTTP status, and the money it expects in each wallet."""

    replicas: list[Replica]
    topic_suffix: str
    identity: DevIdentity  # the test session's: the replicas trust its JWKS (JWT_JWKS_URL, dev profile)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    expected: Counter[str] = field(default_factory=Counter)
    claims: dict[str, tuple[str, int]] = field(default_factory=dict)  # claim id -> (player, amount)
    outcomes: dict[str, str] = field(default_factory=dict)  # claim id -> paid | failed | returned
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def token(self, user: str, *roles: str) -> dict[str, str]:
        token = self.identity.issue(user, list(roles), audience=audience_for("rewards"))
        return {"Authorization": f"Bearer {token}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.token("admin-1", "admin")

    @property
    def ops(self) -> dict[str, str]:
        return self.token("ops-1", "ops")

    def replica(self) -> Replica:
        return self.replicas[self.rng.randrange(len(self.replicas))]

    async def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> httpx.Response:
        r = await self.replica().client.request(method, path, headers=headers, json=body)
        self.statuses[r.status_code] += 1
        if r.status_code >= 500:
            self.failures.append(f"{method} {path} -> {r.status_code} {r.text[:300]}")
        return r

    def topic(self, name: str) -> str:
        return name + self.topic_suffix

    def awaiting_payout(self) -> list[str]:
        """Claims payouts must answer: every claim but those ops rejected (all others were approved)."""
        return [c for c in self.claims if self.outcomes.get(c) != "rejected"]


def _env(database_url: str, kafka_bootstrap: str, suffix: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REWARDS_", "CONSUMER_", "OUTBOX_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "8",
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_SUFFIX": suffix,
            "HTTP_PORT": str(port),
            "LOG_JSON": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "REWARDS_MIN_CLAIM": json.dumps({"USDC": 100}),
            "REWARDS_DAILY_CLAIM_LIMIT": json.dumps({"USDC": 10**12}),
            "REWARDS_REVIEW_THRESHOLD": json.dumps({"USDC": HELD_AMOUNT - 1}),
            "REWARDS_VELOCITY_MAX_CLAIMS": "1000000",
            "REWARDS_NEW_DESTINATION_COOLDOWN_S": "0",
            "REWARDS_REJECTION_RATE_MIN_CLAIMS": "1000000",
            # Any ledger account a path did not lock up front is refused: every flow here proves it declares all.
            "REWARDS_LEDGER_STRICT_LOCKS": "true",
        }
    )
    return env


@contextmanager
def replica_processes(database_url: str, kafka_bootstrap: str, suffix: str, workdir: Path) -> Iterator[list[Replica]]:
    """REPLICAS processes of `python -m prizeflow_rewards`, each stopped by its own pid on exit."""
    replicas: list[Replica] = []
    ports: set[int] = set()
    try:
        for i in range(REPLICAS):
            port = pick_free_port(ports)
            ports.add(port)
            log = workdir / f"rewards-{i}.log"
            env = _env(database_url, kafka_bootstrap, suffix, port)
            process = Process(
                [sys.executable, "-m", "prizeflow_rewards"],
                env,
                log,
                f"http://127.0.0.1:{port}/health/ready",
                cwd=workdir,
                inherit=False,  # the environment minus the rewards settings of the session
                new_session=True,
            )
            replicas.append(Replica(i, port, log, process.spawn()))
        yield replicas
    finally:
        stop_all(r.process for r in replicas)


async def _ready(replica: Replica) -> None:
    await asyncio.to_thread(replica.process.wait_ready, 90)


@asynccontextmanager
async def producer_for(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish(storm: Storm, producer: AIOKafkaProducer, topic: str, envs: list[Envelope[Any]]) -> None:
    """In order (one round's events share a key, so a partition, so this order)."""
    for env in envs:
        await producer.send_and_wait(storm.topic(topic), env.encode(), key=env.key, headers=env.headers())


async def sql(database_url: str, query: str, **params: Any) -> list[Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query), params))
    finally:
        await engine.dispose()


async def deadlocks(database_url: str) -> int:
    rows = await sql(database_url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0][0])


# --- the workload --------------------------------------------------------------------------------------------


async def claim_storm(storm: Storm) -> None:
    """CLAIMS claims on PLAYERS' wallets, CLAIM_CONCURRENCY at a time, spread over every replica."""
    gate = asyncio.Semaphore(CLAIM_CONCURRENCY)

    async def one(i: int) -> None:
        player = PLAYERS[i % len(PLAYERS)]
        amount = HELD_AMOUNT if i % 6 == 5 else 1_000 + 10 * (i % 50)
        async with gate:
            r = await storm.call(
                "POST",
                "/claims/",
                {**storm.token(player, "player"), "Idempotency-Key": f"dl-{i}"},
                {"asset": "USDC", "amount": amount, "destination": DEST},
            )
        if r.status_code == 201:
            storm.claims[r.json()["claim_id"]] = (player, amount)
        elif r.status_code < 500:
            storm.failures.append(f"claim {i} refused: {r.status_code} {r.text[:200]}")

    await asyncio.gather(*(one(i) for i in range(CLAIMS)))


async def ops_storm(storm: Storm, claims_done: asyncio.Event) -> None:
    """Ops decide held claims while the others run: every other one released, the rest rejected (a decision
    that failed is tried again on the next pass)."""
    decided: set[str] = set()
    while True:
        r = await storm.call("GET", "/holds/", storm.ops)
        held = [c["claim_id"] for c in r.json()] if r.status_code == 200 else []
        if not held and claims_done.is_set():
            return
        for claim_id in held:
            if len(decided) % 2:
                r = await storm.call("POST", f"/holds/{claim_id}/release", storm.ops, {"reason": "looks fine"})
            else:
                r = await storm.call("POST", f"/holds/{claim_id}/reject", storm.ops, {"reason": "no thanks"})
                if r.status_code == 200:
                    storm.outcomes[claim_id] = "rejected"
            if r.status_code == 200:
                decided.add(claim_id)
        await asyncio.sleep(0.05)  # the pace of a person at a console, not a wait for an effect


async def payouts_storm(storm: Storm, producer: AIOKafkaProducer, bootstrap: str, stop: asyncio.Event) -> None:
    """Plays payouts: answers every PayoutRequested with PayoutCreated and an outcome (paid, failed for good,
    or paid then returned), each under the claim's key, so outcomes land on every partition and replica."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    topic = storm.topic(PAYOUT_REQUESTS.name)
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        answered: set[str] = set()
        while not (stop.is_set() and all(c in answered for c in storm.awaiting_payout())):
            batch = await consumer.getmany(timeout_ms=200)
            envs = [decode(r.value or b"") for recs in batch.values() for r in recs]
            todo = [e.data for e in envs if isinstance(e.data, PayoutRequested) and e.data.claim_id not in answered]
            for req in todo:
                answered.add(req.claim_id)
            await asyncio.gather(*(answer(storm, producer, req) for req in todo))
    finally:
        await consumer.stop()


def payout_event(cls: type[Any], req: PayoutRequested, **extra: Any) -> Any:
    return example_payload(
        cls,
        payout_id=f"po-{req.claim_id}",
        payout_request_id=req.payout_request_id,
        claim_id=req.claim_id,
        player_id=req.player_id,
        amount=req.amount.model_dump(),
        provider="stellar",
        idempotency_key=req.idempotency_key,
        **extra,
    )


async def answer(storm: Storm, producer: AIOKafkaProducer, req: PayoutRequested) -> None:
    pick = int(uuid.uuid5(uuid.NAMESPACE_URL, req.claim_id)) % 6
    events: list[EventPayload] = [payout_event(PayoutCreated, req)]
    if pick in (0, 1):
        storm.outcomes[req.claim_id] = "failed"
        events.append(
            payout_event(
                PayoutFailed,
                req,
                attempt=1,
                code=PayoutErrorCode.INVALID_DESTINATION,
                retryable=False,
                final=True,
                detail="no such account",
                next_attempt_at=None,
                failed_at=AT,
            )
        )
    else:
        storm.outcomes[req.claim_id] = "paid"
        events.append(payout_event(PayoutPaid, req, paid_at=AT))
        if pick == 2:
            storm.outcomes[req.claim_id] = "returned"
            events.append(
                payout_event(
                    PayoutReturned, req, returned_amount=req.amount.model_dump(), reason="bounced", returned_at=AT
                )
            )
    await publish(
        storm,
        producer,
        PAYOUT_EVENTS.name,
        [new_event(e, source="/payouts", correlation_id=req.claim_id) for e in events],
    )


def _round(round_id: str, payload: EventPayload) -> Envelope[Any]:
    return new_event(payload, source="/prizeflow/settlement", correlation_id=round_id)


def _entry(storm: Storm, round_id: str, n: int, player: str) -> Envelope[Any]:
    storm.expected[player] -= ENTRY_FEE
    return _round(
        round_id,
        EntryAccepted(
            round_id=round_id,
            entry_id=f"{round_id}-e{n}",
            player_id=player,
            fee={"asset": "USDC", "amount": ENTRY_FEE},
            paid_via="wallet",
            accepted_at=AT,
        ),
    )


async def rounds_storm(storm: Storm, producer: AIOKafkaProducer) -> None:
    """Settlement's decisions, each round's events in order, rounds concurrently."""
    rng = random.Random(11)

    async def sponsored(i: int) -> None:
        round_id = f"dl-sr-{i}"
        players = rng.sample(PLAYERS, 3)
        shares = {p: 1_000 + 100 * j + i for j, p in enumerate(players)}
        for p, a in shares.items():
            storm.expected[p] += a
        # Entries (wallet-paid) into the same round first, then its settlement, as settlement announces them.
        entries = [_entry(storm, round_id, n, p) for n, p in enumerate(rng.sample(PLAYERS, 2))]
        settled = example_payload(
            RoundSettled,
            round_id=round_id,
            competition_id="dl-comp",
            asset="USDC",
            prize_source="sponsored",
            campaign_id=CAMPAIGNS[i % len(CAMPAIGNS)],
            distributable=sum(shares.values()),
            allocations=[
                {"player_id": p, "rank": r + 1, "amount": a, "source": "pool"}
                for r, (p, a) in enumerate(shares.items())
            ],
            remainder=0,
            fees=[{"party": "platform", "account_id": "dl-plat", "amount": {"asset": "USDC", "amount": 2 * ENTRY_FEE}}],
        )
        await publish(storm, producer, SETTLEMENT_ROUNDS.name, [*entries, _round(round_id, settled)])

    async def pot(i: int) -> None:
        round_id = f"dl-pr-{i}"
        entrants = rng.sample(PLAYERS, 3)
        entries = [_entry(storm, round_id, n, p) for n, p in enumerate(entrants)]
        winner, fee = entrants[0], 300
        storm.expected[winner] += 3 * ENTRY_FEE - fee
        settled = example_payload(
            RoundSettled,
            round_id=round_id,
            competition_id="dl-comp",
            asset="USDC",
            prize_source="entry_pot",
            campaign_id=None,
            distributable=3 * ENTRY_FEE - fee,
            allocations=[{"player_id": winner, "rank": 1, "amount": 3 * ENTRY_FEE - fee, "source": "pot"}],
            remainder=0,
            fees=[{"party": "organizer", "account_id": "dl-org", "amount": {"asset": "USDC", "amount": fee}}],
        )
        await publish(storm, producer, SETTLEMENT_ROUNDS.name, [*entries, _round(round_id, settled)])

    async def voided(i: int) -> None:
        round_id = f"dl-vr-{i}"
        entrants = rng.sample(PLAYERS, 2)
        entries = [_entry(storm, round_id, n, p) for n, p in enumerate(entrants)]
        for p in entrants:
            storm.expected[p] += ENTRY_FEE
        void = RoundVoided(
            round_id=round_id,
            reason="server crashed",
            refunds=[
                {
                    "player_id": p,
                    "entry_id": f"{round_id}-e{n}",
                    "amount": {"asset": "USDC", "amount": ENTRY_FEE},
                    "paid_via": "wallet",
                }
                for n, p in enumerate(entrants)
            ],
            voided_at=AT,
        )
        await publish(storm, producer, SETTLEMENT_ROUNDS.name, [*entries, _round(round_id, void)])

    await asyncio.gather(
        *(sponsored(i) for i in range(SPONSORED_ROUNDS)),
        *(pot(i) for i in range(POT_ROUNDS)),
        *(voided(i) for i in range(VOIDED_ROUNDS)),
    )


async def admin_storm(storm: Storm) -> None:
    """Top-ups, pool funding and held-round releases while the money flows."""

    async def top_up(i: int) -> None:
        player = PLAYERS[i % len(PLAYERS)]
        r = await storm.call(
            "POST",
            f"/wallets/{player}/top-ups",
            storm.admin,
            {"asset": "USDC", "amount": 1_000 + i, "provider": "stripe", "reference": f"dl-storm-{i}"},
        )
        if r.status_code == 200:
            storm.expected[player] += 1_000 + i

    async def fund(i: int) -> None:
        campaign = CAMPAIGNS[i % len(CAMPAIGNS)]
        await storm.call(
            "POST", f"/campaigns/{campaign}/fund", storm.admin, {"amount": 10_000, "reference": f"dl-storm-{i}"}
        )
        await storm.call("POST", f"/campaigns/{campaign}/held/release", storm.admin)

    await asyncio.gather(*(top_up(i) for i in range(24)), *(fund(i) for i in range(8)))


async def setup(storm: Storm, producer: AIOKafkaProducer) -> None:
    await publish(storm, producer, PAYOUT_EVENTS.name, [routes_event(ROUTES)])

    async def routes() -> int:
        r = await storm.call("GET", "/payout-routes/", storm.admin)
        return len(r.json()["routes"]) if r.status_code == 200 else 0

    await eventually(routes, lambda n: n == len(ROUTES), timeout=60)
    for campaign in CAMPAIGNS:
        r = await storm.call(
            "POST", "/campaigns/", storm.admin, {"campaign_id": campaign, "name": campaign, "asset": "USDC"}
        )
        assert r.status_code == 201, r.text
        r = await storm.call("POST", f"/campaigns/{campaign}/fund", storm.admin, {"amount": 10**9, "reference": "seed"})
        assert r.status_code == 200, r.text
    for player in PLAYERS:
        r = await storm.call(
            "POST",
            f"/wallets/{player}/top-ups",
            storm.admin,
            {"asset": "USDC", "amount": TOP_UP, "provider": "stripe", "reference": f"dl-seed-{player}"},
        )
        assert r.status_code == 200, r.text
        storm.expected[player] += TOP_UP


async def storm_and_settle(
    storm: Storm, producer: AIOKafkaProducer, bootstrap: str, database_url: str, progress: Callable[[str], None]
) -> None:
    """Everything at once; then wait until every claim is final and both consumers have caught up."""
    claims_done, stop = asyncio.Event(), asyncio.Event()

    async def claims_then_flag() -> None:
        await claim_storm(storm)
        claims_done.set()
        progress(f"{len(storm.claims)} claims accepted")

    payouts = asyncio.create_task(payouts_storm(storm, producer, bootstrap, stop))
    try:
        await asyncio.gather(
            claims_then_flag(), ops_storm(storm, claims_done), rounds_storm(storm, producer), admin_storm(storm)
        )
        progress("claims, holds, rounds and admin actions done")
        stop.set()
        await payouts
        progress("every payout request answered")
    finally:
        payouts.cancel()
    final = ["paid", "voided", "rejected", "returned"]

    async def unsettled() -> list[Any]:
        return await sql(database_url, "SELECT id, status FROM claims WHERE status <> ALL(CAST(:f AS text[]))", f=final)

    await eventually(unsettled, lambda rows: not rows, timeout=STORM_DEADLINE_S, interval=0.5)
    for group, topic in (("rewards-rounds", SETTLEMENT_ROUNDS.name), ("rewards-payouts", PAYOUT_EVENTS.name)):
        await wait_caught_up(bootstrap, group + storm.topic_suffix, storm.topic(topic), timeout=STORM_DEADLINE_S)
    progress("every claim final, both consumers caught up")


# --- the test ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(900)
async def test_replicas_move_money_concurrently_without_a_single_deadlock(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, dev_identity: DevIdentity, tmp_path: Path
) -> None:
    suffix = topic_suffix
    await provision_test_topics(kafka_bootstrap, suffix)  # the replicas only verify their topics
    before = await deadlocks(database_url)
    started = time.monotonic()

    def progress(what: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {what}", flush=True)

    with replica_processes(database_url, kafka_bootstrap, suffix, tmp_path) as replicas:
        storm = Storm(replicas, suffix, dev_identity)
        try:
            await asyncio.gather(*(_ready(r) for r in replicas))
            progress(f"{REPLICAS} replicas ready")
            async with producer_for(kafka_bootstrap) as producer:
                await setup(storm, producer)
                progress("routes known, pools funded, wallets topped up")
                try:
                    async with asyncio.timeout(STORM_DEADLINE_S):
                        await storm_and_settle(storm, producer, kafka_bootstrap, database_url, progress)
                except TimeoutError:
                    storm.failures.append(f"the storm did not settle within {STORM_DEADLINE_S}s")
        finally:
            for r in replicas:
                await r.client.aclose()
    progress(f"replicas stopped; HTTP statuses {dict(storm.statuses)}")
    logs = "\n".join(f"--- replica {r.index}\n{r.log.read_text()[-4000:]}" for r in replicas)

    async def other_backends() -> int:
        rows = await sql(
            database_url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        return int(rows[0][0])

    # A backend flushes its statistics when it exits: once the replicas' are gone, every deadlock is counted.
    await eventually(other_backends, lambda n: n == 0, timeout=30)
    found = await deadlocks(database_url) - before
    fell_back = sum(r.log.read_text().count("retrying its records one by one") for r in replicas)

    errors = sum(n for s, n in storm.statuses.items() if s >= 500)
    summary = (
        f"PostgreSQL detected {found} deadlocks; {errors} HTTP 5xx; {fell_back} consumer batches fell back to "
        f"one transaction per record; HTTP statuses {dict(storm.statuses)}"
    )
    progress(summary)
    assert found == 0, f"{summary}\n{logs}"
    assert errors == 0, "\n".join([summary, *storm.failures[:20], _errors_logged(replicas)])
    assert not storm.failures, "\n".join(storm.failures[:20])
    assert fell_back == 0, logs

    # Nothing refused, nothing dead-lettered.
    assert await sql(database_url, "SELECT consumer, reason, detail FROM dead_letters") == []
    # Per asset the balances sum to zero, posted and pending; no flagged account is negative.
    sums = await sql(
        database_url,
        "SELECT asset, sum(credits_posted - debits_posted), sum(credits_pending - debits_pending) "
        "FROM ledger_accounts GROUP BY asset",
    )
    assert [(a, int(p), int(q)) for a, p, q in sums] == [("USDC", 0, 0)]
    negative = await sql(
        database_url,
        "SELECT kind, owner_id FROM ledger_accounts "
        "WHERE flags & 1 = 1 AND debits_posted + debits_pending > credits_posted",
    )
    assert negative == []
    # Each claim's reservation resolved exactly once, the way its outcome says.
    rows = await sql(
        database_url,
        """
        SELECT c.id, c.status,
               count(t.id) FILTER (WHERE t.flags & 2 = 2) AS posts,
               count(t.id) FILTER (WHERE t.flags & 4 = 4) AS voids,
               (SELECT count(*) FROM ledger_transfers s WHERE s.business_key = 'payout_settle|' || c.id) AS settles
        FROM claims c LEFT JOIN ledger_transfers t ON t.pending_id = c.pending_transfer_id
        GROUP BY c.id, c.status
        """,
    )
    assert len(rows) == len(storm.claims) == CLAIMS
    want = {"paid": ("paid", 1, 0, 1), "returned": ("returned", 1, 0, 1), "failed": ("voided", 0, 1, 0)}
    want["rejected"] = ("rejected", 0, 1, 0)
    for claim_id, status, posts, voids, settles in rows:
        assert (status, posts, voids, settles) == want[storm.outcomes[claim_id]], claim_id
    # Every wallet holds exactly what the test moved: top-ups, prizes and refunds in; fees and paid claims out.
    for claim_id, (player, amount) in storm.claims.items():
        if storm.outcomes[claim_id] == "paid":
            storm.expected[player] -= amount
    wallets = await sql(
        database_url,
        "SELECT owner_id, credits_posted - debits_posted, debits_pending FROM ledger_accounts "
        "WHERE kind = 'player_wallet'",
    )
    assert {p: (int(b), int(r)) for p, b, r in wallets} == {p: (storm.expected[p], 0) for p in PLAYERS}
