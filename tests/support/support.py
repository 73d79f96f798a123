"""Helpers for whole-platform tests: a game server, API clients with role tokens, DB and topic readers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.events.game import (
    Distribution,
    DistributionTemplate,
    EntryRecorded,
    GameRoundVoided,
    PaidVia,
    Placement,
    PrizeSource,
    PrizeSpec,
    RoundClosed,
    RoundOpened,
    RoundResultsReported,
)
from prizeflow_contracts.money import Money
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_devstack.platform import Platform
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit import eventually, fetch, read_topic, wait_caught_up

T = TypeVar("T")
USDC = 10_000_000  # minor units in one USDC


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class GameServer:
    """Publishes a round's events as a game server does: keyed by the round id, in order."""

    def __init__(self, bootstrap: str, suffix: str) -> None:
        self.topic = GAME_ROUNDS.name + suffix
        self._producer: AIOKafkaProducer = idempotent_producer(bootstrap, client_id="e2e-game")

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, round_id: str, *payloads: EventPayload) -> list[Envelope[Any]]:
        envelopes = [new_event(p, source="/games/e2e", correlation_id=round_id, subject=round_id) for p in payloads]
        for env in envelopes:
            await self._producer.send_and_wait(self.topic, env.encode(), key=env.key, headers=env.headers())
        return envelopes

    async def sponsored_round(
        self,
        round_id: str,
        players: Sequence[str],
        *,
        campaign_id: str,
        prize: int,
        template: DistributionTemplate = DistributionTemplate.TOP3,
        ranks: Sequence[int] | None = None,
        entry_fee: int = 0,
        paid_via: PaidVia = PaidVia.EXTERNAL,
        close: bool = True,
        results: bool = True,
        asset: str = "USDC",
    ) -> None:
        now = datetime.now(UTC)
        fee = Money(asset=asset, amount=entry_fee)
        events: list[EventPayload] = [
            RoundOpened(
                round_id=round_id,
                competition_id="e2e-cup",
                game_id="e2e",
                opened_at=now,
                entry_fee=fee if entry_fee else None,
                prize=PrizeSpec(asset=asset, amount=prize, campaign_id=campaign_id),
                prize_source=PrizeSource.SPONSORED,
                distribution=Distribution(template=template),
            )
        ]
        events += [
            EntryRecorded(
                round_id=round_id, entry_id=f"{round_id}-e{i}", player_id=p, fee=fee, paid_via=paid_via, recorded_at=now
            )
            for i, p in enumerate(players)
        ]
        if close:
            events.append(RoundClosed(round_id=round_id, closed_at=now, entry_count=len(players)))
        if results:
            events.append(results_of(round_id, players, ranks))
        await self.publish(round_id, *events)

    async def void(self, round_id: str, reason: str = "server crashed") -> None:
        await self.publish(round_id, GameRoundVoided(round_id=round_id, reason=reason, voided_at=datetime.now(UTC)))


def results_of(round_id: str, players: Sequence[str], ranks: Sequence[int] | None = None) -> RoundResultsReported:
    ranks = ranks or list(range(1, len(players) + 1))
    return RoundResultsReported(
        round_id=round_id,
        placements=[Placement(player_id=p, rank=r, score=1000 - 10 * r) for p, r in zip(players, ranks, strict=True)],
        reported_at=datetime.now(UTC),
    )


class Api:
    """HTTP clients for the platform's services, with tokens minted for any role by the platform's dev identity."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.identity = platform.identity
        # Kept-alive connections expire before uvicorn's 5 s keep-alive closes them (no ReadError on a reused one).
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))

    def token(self, user: str, *roles: str, service: str) -> dict[str, str]:
        """A bearer header for `user` holding `roles`, for `service`'s audience only."""
        return {"Authorization": f"Bearer {self.identity.issue(user, roles, audience=audience_for(service))}"}

    async def call(
        self, method: str, service: str, path: str, *, user: str, roles: Sequence[str], **kwargs: Any
    ) -> httpx.Response:
        headers = {**self.token(user, *roles, service=service), **kwargs.pop("headers", {})}
        return await self.http.request(method, self.platform.url(service) + path, headers=headers, **kwargs)

    async def ok(self, method: str, service: str, path: str, *, user: str, roles: Sequence[str], **kw: Any) -> Any:
        response = await self.call(method, service, path, user=user, roles=roles, **kw)
        assert response.is_success, f"{method} {service}{path}: {response.status_code} {response.text}"
        return response.json()

    async def close(self) -> None:
        await self.http.aclose()

    # rewards
    async def funded_campaign(self, campaign_id: str, amount: int, *, asset: str = "USDC") -> None:
        await self.ok(
            "POST",
            "rewards",
            "/campaigns/",
            user="sponsor",
            roles=["admin"],
            json={"campaign_id": campaign_id, "name": campaign_id, "asset": asset},
        )
        await self.fund(campaign_id, amount, reference=f"{campaign_id}-initial")

    async def fund(self, campaign_id: str, amount: int, *, reference: str) -> Any:
        return await self.ok(
            "POST",
            "rewards",
            f"/campaigns/{campaign_id}/fund",
            user="sponsor",
            roles=["admin"],
            json={"amount": amount, "reference": reference},
        )

    async def available(self, player: str, asset: str = "USDC") -> int:
        doc = await self.ok("GET", "rewards", f"/wallets/{player}", user=player, roles=["player"])
        return sum(int(b["available"]) for b in doc["balances"] if b["asset"] == asset)


async def wait_for(probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], timeout: float = 60.0) -> T:
    return await eventually(probe, until, timeout=timeout, interval=0.25)


async def events_on(bootstrap: str, topic: str) -> list[Envelope[Any]]:
    out = []
    for record in await read_topic(bootstrap, topic):
        try:
            out.append(decode(record.value))
        except EventRefusal:
            continue
    return out


async def gather_events(bootstrap: str, topics: Sequence[str]) -> list[Envelope[Any]]:
    per_topic = await asyncio.gather(*(events_on(bootstrap, t) for t in topics))
    return [e for events in per_topic for e in events]


async def top_up(api: Api, player: str, amount: int, *, reference: str | None = None) -> None:
    """Money arrives in a player's wallet from outside (a card top-up)."""
    await api.ok(
        "POST",
        "rewards",
        f"/wallets/{player}/top-ups",
        user="cashier",
        roles=["admin"],
        json={"asset": "USDC", "amount": amount, "provider": "sandbox", "reference": reference or uid("topup")},
    )


async def claim(
    api: Api, player: str, amount: int, destination: dict[str, str], *, key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await api.call(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": "USDC", "amount": amount, "destination": destination},
        headers=headers,
    )


async def claim_status(api: Api, player: str, claim_id: str) -> str:
    doc = await api.ok("GET", "rewards", f"/claims/{claim_id}", user=player, roles=["player"])
    return str(doc["status"])


async def groups_of(platform: Platform) -> dict[str, list[TopicPartition]]:
    """The platform's consumer groups and the partitions each has committed offsets on (a partition it never
    committed on is read from its start anyway: `auto_offset_reset=earliest`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.infra.kafka_bootstrap)
    await admin.start()
    try:
        groups = [g[0] for g in await admin.list_consumer_groups() if g[0].endswith(platform.suffix)]
        out: dict[str, list[TopicPartition]] = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            if offsets:
                out[group] = sorted(offsets, key=lambda tp: (tp.topic, tp.partition))
        return out
    finally:
        await admin.close()


async def topics_of(platform: Platform) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.infra.kafka_bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if platform.suffix in t)
    finally:
        await admin.close()


async def caught_up(platform: Platform, *, timeout: float = 120.0) -> None:
    """Every consumer group has committed the end of every topic it reads, and every outbox is empty."""
    for group, partitions in (await groups_of(platform)).items():
        for topic in sorted({tp.topic for tp in partitions}):
            await wait_caught_up(platform.infra.kafka_bootstrap, group, topic, timeout=timeout)
    for proc in platform.procs.values():
        if proc.database_url is None:
            continue
        db = proc.database_url
        if (await fetch(db, "SELECT to_regclass('outbox') IS NOT NULL AS has"))[0]["has"] is not True:
            continue  # a service that publishes nothing (the console) keeps no outbox

        async def outbox(db: str = db) -> int:
            return int((await fetch(db, "SELECT count(*) AS n FROM outbox"))[0]["n"])

        await eventually(outbox, lambda n: n == 0, timeout=timeout)


async def rewind(platform: Platform, groups: dict[str, list[TopicPartition]]) -> None:
    """Commit offset 0 on every partition each group has read (its services are stopped): the operator's
    "replay the topics" move."""
    for group, partitions in groups.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=platform.infra.kafka_bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.commit(dict.fromkeys(partitions, 0))
        finally:
            await consumer.stop()


async def ledger_invariants(platform: Platform) -> None:
    """Per asset the balances sum to zero; no account with the no-overdraft flag is below zero."""
    db = platform.procs["rewards"].database_url
    assert db is not None
    sums = await fetch(db, "SELECT asset, sum(credits_posted - debits_posted) AS s FROM ledger_accounts GROUP BY asset")
    assert all(row["s"] == 0 for row in sums), sums
    negative = await fetch(
        db,
        "SELECT kind, owner_id, asset FROM ledger_accounts WHERE flags & 1 = 1 "
        "AND debits_posted + debits_pending > credits_posted",
    )
    assert negative == []
