"""Test helpers (tests only; needs httpx): a running rewards app (HTTP, consumers, relay) on real infra."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from litestar.testing import AsyncTestClient

from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.payouts import PayoutRoute, PayoutRoutesPublished
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS
from prizeflow_rewards.application.claims import ClaimPolicy
from prizeflow_rewards.bootstrap import build
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_testkit import dev_bearer, eventually, free_port, provision_test_topics, read_topic, wait_ready
from prizeflow_testkit.events import AT
from prizeflow_testkit.processes import Process, stop_all

STELLAR_KEY = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
# Claim rules that approve any claim the balance covers: no daily limit, review threshold, velocity or new-destination
# hold in the way of what a test measures.
OPEN_CLAIM_POLICY = ClaimPolicy(
    min_claim={"USDC": 1},
    daily_limit={"USDC": 10**12},
    review_threshold={"USDC": 10**12},
    velocity_max_claims=1_000,
    new_destination_cooldown_s=0,
)
# What the tests' payouts "configuration" pays, as payouts would announce it.
ROUTES = (
    PayoutRoute(asset="USDC", destination_type=DestinationType.STELLAR_ACCOUNT, provider=ProviderType.STELLAR),
    PayoutRoute(asset="XLM", destination_type=DestinationType.STELLAR_ACCOUNT, provider=ProviderType.STELLAR),
    PayoutRoute(asset="USDC", destination_type=DestinationType.SANDBOX, provider=ProviderType.SANDBOX),
)


def routes_event(routes: Sequence[PayoutRoute] = ROUTES, *, sequence: int = 1) -> Envelope[PayoutRoutesPublished]:
    return new_event(
        PayoutRoutesPublished(sequence=sequence, routes=list(routes), published_at=AT),
        source="/prizeflow/payouts",
        correlation_id=f"payouts-routes-{sequence}",
    )


def settings_for(database_url: str, kafka_bootstrap: str, *, topic_suffix: str, **overrides: Any) -> RewardsSettings:
    """`topic_suffix`: the devstack's `topic_suffix` fixture, which deletes the test's topics afterwards."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_topic_suffix": topic_suffix,
        "outbox_poll_interval_ms": 50,
        "rewards_new_destination_cooldown_s": 0,
        "rewards_min_claim": {"USDC": 100},
        "rewards_daily_claim_limit": {"USDC": 1_000_000},
        "rewards_review_threshold": {"USDC": 500_000},
        "rewards_velocity_max_claims": 100,
        "rewards_metrics_refresh_s": 0.2,
        "rewards_ledger_strict_locks": True,
        "log_json": False,
    }
    values.update(overrides)
    return RewardsSettings(**values)


def token(settings: RewardsSettings, user: str, *roles: str) -> dict[str, str]:
    """A bearer header for `user` holding `roles`, signed by the test session's dev identity."""
    return dev_bearer(settings, user, *roles)


@dataclass
class Running:
    settings: RewardsSettings
    client: AsyncTestClient[Any]
    producer: AIOKafkaProducer

    @property
    def admin(self) -> dict[str, str]:
        return token(self.settings, "admin-1", "admin")

    @property
    def ops(self) -> dict[str, str]:
        return token(self.settings, "ops-1", "ops")

    def player(self, player_id: str) -> dict[str, str]:
        return token(self.settings, player_id, "player")

    def topic(self, name: str) -> str:
        return name + self.settings.kafka_topic_suffix

    async def publish(self, topic: str, envelopes: Sequence[Envelope[Any]]) -> None:
        for env in envelopes:
            await self.producer.send_and_wait(self.topic(topic), env.encode(), key=env.key, headers=env.headers())

    async def events(self, topic: str) -> list[Envelope[Any]]:
        records = await read_topic(self.settings.kafka_bootstrap_servers, self.topic(topic))
        return [decode(r.value or b"") for r in records]

    async def announce_routes(self, routes: Sequence[PayoutRoute] = ROUTES, *, sequence: int = 1) -> None:
        """Publish payouts' routes and wait until rewards knows them (claims to anything else are refused)."""
        await self.publish(PAYOUT_EVENTS.name, [routes_event(routes, sequence=sequence)])
        want = sorted((r.asset, r.destination_type.value) for r in routes)

        async def known() -> list[tuple[str, str]]:
            r = await self.client.get("/payout-routes/", headers=self.admin)
            return sorted((x["asset"], x["destination_type"]) for x in r.json()["routes"])

        await eventually(known, lambda k: k == want, timeout=60)

    async def balances(self, player_id: str) -> dict[str, dict[str, int]]:
        r = await self.client.get(f"/wallets/{player_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        return {b["asset"]: b for b in r.json()["balances"]}


@asynccontextmanager
async def running_app(settings: RewardsSettings, *, routes: Sequence[PayoutRoute] = ROUTES) -> AsyncIterator[Running]:
    """The whole rewards process in this event loop, told payouts' `routes` (none: claims are all refused).
    Its topics are provisioned first, as the ops Job does: the service only verifies them."""
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix, settings.kafka_topics)
    app = build(settings)
    producer = idempotent_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with AsyncTestClient(app) as client:
            await wait_ready(client)
            running = Running(settings, client, producer)
            if routes:
                await running.announce_routes(routes)
            yield running
    finally:
        await producer.stop()


def metric(exposition: str, name: str) -> float | None:
    """The value of an unlabelled sample `name` in a Prometheus text exposition (None: not exported)."""
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def claim_intake_waiting(client: httpx.AsyncClient | AsyncTestClient[Any]) -> int:
    """Claim requests queued behind the intake transaction committing (`prizeflow_rewards_claim_intake_waiting`)."""
    r = await client.get("/metrics")
    value = metric(r.text, "prizeflow_rewards_claim_intake_waiting")
    assert value is not None, "the service exports no prizeflow_rewards_claim_intake_waiting"
    return int(value)


@dataclass
class RewardsReplica:
    """`python -m prizeflow_rewards` as a process of its own, one of several on one database (`rewards_replicas`)."""

    index: int
    port: int
    log: Path
    process: Process
    tokens: RewardsSettings  # the test session's identity settings, to mint the tokens it accepts
    client: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        # A kept-alive connection expires here before uvicorn's 5 s keep-alive closes it on the server's side.
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}", timeout=120.0, limits=httpx.Limits(keepalive_expiry=2.0)
        )

    @property
    def admin(self) -> dict[str, str]:
        return token(self.tokens, "admin-1", "admin")

    def player(self, player_id: str) -> dict[str, str]:
        return token(self.tokens, player_id, "player")

    async def top_up(self, player_id: str, asset: str, amount: int, *, provider: str = "stripe") -> None:
        body = {"asset": asset, "amount": amount, "provider": provider, "reference": f"{provider}-{player_id}-{asset}"}
        r = await self.client.post(f"/wallets/{player_id}/top-ups", json=body, headers=self.admin)
        assert r.status_code == 200, r.text


def replica_env(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, port: int, env: Mapping[str, str]
) -> dict[str, str]:
    """This session's environment without its service settings, the infrastructure's, and `env` on top."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("REWARDS_", "CONSUMER_", "OUTBOX_", "DATABASE_"))}
    out.update(
        {
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "8",
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAFKA_TOPIC_SUFFIX": topic_suffix,
            "HTTP_PORT": str(port),
            "LOG_JSON": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "REWARDS_LEDGER_STRICT_LOCKS": "true",
            **env,
        }
    )
    return out


@contextmanager
def rewards_replicas(
    count: int,
    *,
    database_url: str,
    kafka_bootstrap: str,
    topic_suffix: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[list[RewardsReplica]]:
    """`count` rewards processes on one database and one set of topics (provisioned by the caller), each with its
    log in `workdir`; not waited for (`await replicas_ready(...)`); each stopped by its own pid on exit."""
    tokens = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    replicas: list[RewardsReplica] = []
    try:
        for i in range(count):
            port = free_port()
            log = workdir / f"rewards-{i}.log"
            process = Process(
                [sys.executable, "-m", "prizeflow_rewards"],
                replica_env(database_url, kafka_bootstrap, topic_suffix, port, env or {}),
                log,
                f"http://127.0.0.1:{port}/health/ready",
                cwd=workdir,
                inherit=False,
                new_session=True,
            )
            replicas.append(RewardsReplica(i, port, log, process.spawn(), tokens))
        yield replicas
    finally:
        stop_all(r.process for r in replicas)


async def replicas_ready(replicas: Sequence[RewardsReplica], *, timeout: float = 90) -> None:
    await asyncio.gather(*(asyncio.to_thread(r.process.wait_ready, timeout) for r in replicas))


async def close_clients(replicas: Sequence[RewardsReplica]) -> None:
    for r in replicas:
        await r.client.aclose()


@asynccontextmanager
async def serving_replicas(
    count: int,
    *,
    database_url: str,
    kafka_bootstrap: str,
    topic_suffix: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    routes: Sequence[PayoutRoute] = ROUTES,
) -> AsyncIterator[list[RewardsReplica]]:
    """`rewards_replicas` on topics provisioned first, ready, told payouts' `routes` (each replica answers
    `GET /payout-routes` with them) and, on the way out, their HTTP clients closed and their processes stopped.
    For requests that must run concurrently: the in-process test client serves one request at a time."""
    await provision_test_topics(kafka_bootstrap, topic_suffix)
    with rewards_replicas(
        count,
        database_url=database_url,
        kafka_bootstrap=kafka_bootstrap,
        topic_suffix=topic_suffix,
        workdir=workdir,
        env=env,
    ) as replicas:
        try:
            await replicas_ready(replicas)
            producer = idempotent_producer(kafka_bootstrap)
            await producer.start()
            try:
                announced = routes_event(routes)
                await producer.send_and_wait(
                    PAYOUT_EVENTS.name + topic_suffix,
                    announced.encode(),
                    key=announced.key,
                    headers=announced.headers(),
                )
            finally:
                await producer.stop()
            want = sorted((r.asset, r.destination_type.value) for r in routes)
            for replica in replicas:

                async def known(replica: RewardsReplica = replica) -> list[tuple[str, str]]:
                    r = await replica.client.get("/payout-routes/", headers=replica.admin)
                    return sorted((x["asset"], x["destination_type"]) for x in r.json()["routes"])

                await eventually(known, lambda k: k == want, timeout=60)
            yield replicas
        finally:
            await close_clients(replicas)
