"""Test helpers (tests only; needs httpx): a running rewards app (HTTP, consumers, relay) on real infra."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

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
from prizeflow_testkit import dev_bearer, eventually, provision_test_topics, read_topic, wait_ready
from prizeflow_testkit.events import AT

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
