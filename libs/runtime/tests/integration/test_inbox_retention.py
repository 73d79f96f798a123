"""The inbox's dedup horizon on real PostgreSQL and Kafka (ADR 0008).

Dropping whole partitions past the horizon can never apply an event twice: what is inside the horizon stays
deduplicated after the drop, and what is older is refused, not applied. The partitions are kept by a function the
service's runtime role may call but could not do itself, concurrently and idempotently. A service refuses to start
while a consumed topic keeps records longer than its horizon covers, naming the setting and the topic.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sample import ThingHappened, apply_thing, totals, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.dead_letters import DeadLetterAdmin
from prizeflow_runtime.errors import UseCaseError
from prizeflow_runtime.http import NotReady
from prizeflow_runtime.inbox_retention import InboxRetention, horizon_problems, maintain_inbox
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import DAY_MS, InboxSettings, ServiceSettings
from prizeflow_runtime.topics import TopicSpec, provision_topics, topic_retention_ms
from prizeflow_testkit.waits import eventually

pytestmark = pytest.mark.integration

TOPIC = "prizeflow.retention.things.v1"
LONG = InboxRetention(horizon=timedelta(days=25))
SHORT = InboxRetention(horizon=timedelta(days=3))


def at(time: datetime, thing_id: str, amount: int) -> Envelope[ThingHappened]:
    return new_event(
        ThingHappened(thing_id=thing_id, amount=amount), source="/prizeflow/tests", correlation_id="k", time=time
    )


def records(envelopes: Sequence[Envelope[Any]]) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for offset, env in enumerate(envelopes):
        value = env.encode()
        out.append(ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", value, None, len(value), 1, []))
    return out


def consumer(engine: AsyncEngine, name: str, retention: InboxRetention) -> ReliableConsumer:
    return ReliableConsumer(
        name=name, topics=[TOPIC], session_factory=session_factory(engine), handler=apply_thing, retention=retention
    )


async def letters(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT reason, event_type FROM dead_letters ORDER BY id"))
        return [(r.reason, r.event_type) for r in rows]


async def partitions(engine: AsyncEngine) -> list[tuple[str, datetime, datetime]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT name, lower_at, upper_at FROM prizeflow_inbox_partitions()"))
        return [(r.name, r.lower_at, r.upper_at) for r in rows]


async def test_a_dropped_partition_cannot_apply_an_event_twice(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    old = at(now - timedelta(days=20), "old", 100)
    recent = at(now - timedelta(days=1), "recent", 10)
    fresh = at(now, "fresh", 1)
    name = unique("retention")
    long_horizon = consumer(engine, name, LONG)

    await long_horizon.process(records([old, recent, fresh]))
    await long_horizon.process(records([old, recent, fresh]))  # a redelivery: deduplicated
    assert await totals(engine) == (111, 3)

    dropped = await maintain_inbox(engine, SHORT, now)
    assert any(action.startswith("dropped ") for action in dropped)
    async with engine.connect() as conn:
        kept = set((await conn.execute(text("SELECT event_id FROM inbox WHERE consumer = :c"), {"c": name})).scalars())
    assert kept == {recent.id, fresh.id}  # the old event's partition is gone, with its dedup row

    # Everything replayed once the old partition is gone: inside the horizon still deduplicated, the old event
    # refused (never applied again), and a second replay adds no second letter.
    short_horizon = consumer(engine, name, SHORT)
    await short_horizon.process(records([old, recent, fresh]))
    await short_horizon.process(records([old, recent, fresh]))
    assert await totals(engine) == (111, 3)
    assert await letters(engine) == [("beyond_dedup_horizon", old.type)]

    admin = DeadLetterAdmin(
        sessions=session_factory(engine), consumers=lambda: {name: short_horizon}, service="t", source="/t"
    )
    async with engine.connect() as conn:
        letter_id = (await conn.execute(text("SELECT id FROM dead_letters"))).scalar_one()
    with pytest.raises(UseCaseError) as refused:
        await admin.redrive(
            letter_id, actor=Principal("ops-1", frozenset({Role.OPS})), reason="try", correlation_id="o"
        )
    assert refused.value.code == "not_redrivable"
    assert await totals(engine) == (111, 3)


async def test_raising_the_horizon_after_a_drop_never_brings_a_forgotten_event_back(engine: AsyncEngine) -> None:
    """The dropped partitions are not created again, so the forgotten event finds none and is refused."""
    now = datetime.now(UTC)
    old = at(now - timedelta(days=20), "old", 100)
    name = unique("raised")
    await consumer(engine, name, LONG).process(records([old]))
    await maintain_inbox(engine, SHORT, now)
    await maintain_inbox(engine, LONG, now)  # the operator raised INBOX_DEDUP_HORIZON_DAYS again
    assert (await partitions(engine))[0][1] > old.time

    await consumer(engine, name, LONG).process(records([old]))
    assert await totals(engine) == (100, 1)
    assert await letters(engine) == [("beyond_dedup_horizon", old.type)]


async def test_an_event_from_beyond_the_clock_skew_is_refused_not_applied(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    ahead = at(now + timedelta(hours=3), "ahead", 7)
    within = at(now + timedelta(minutes=5), "within", 1)
    c = consumer(engine, unique("skew"), InboxRetention(horizon=timedelta(days=3), max_skew=timedelta(minutes=10)))
    await c.process(records([ahead, within]))
    assert await totals(engine) == (1, 1)
    assert await letters(engine) == [("beyond_clock_skew", ahead.type)]


async def test_maintenance_is_idempotent_gapless_and_safe_to_run_concurrently(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    hourly = InboxRetention(horizon=timedelta(days=2), partition_width=timedelta(hours=6))
    await asyncio.gather(*(maintain_inbox(engine, hourly, now) for _ in range(4)))
    assert await maintain_inbox(engine, hourly, now) == []  # nothing left to do
    parts = await partitions(engine)
    assert parts[0][2] > hourly.keep_from(now)  # nothing older than the horizon (plus its grace) is left
    assert parts[-1][2] >= hourly.cover_until(now)
    assert all(a[2] == b[1] for a, b in itertools.pairwise(parts))  # no gap, no overlap


async def test_the_runtime_role_maintains_partitions_it_could_not_create_itself(engine: AsyncEngine) -> None:
    role = f"inbox_rt_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        await conn.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"SET LOCAL ROLE {role}"))
            with pytest.raises(Exception, match="permission denied"):
                async with conn.begin_nested():
                    await conn.execute(text("CREATE TABLE inbox_pxx PARTITION OF inbox DEFAULT"))
            actions = await maintain_inbox(conn, SHORT, datetime.now(UTC))
            assert any(action.startswith("dropped ") for action in actions)
            with pytest.raises(Exception, match="maintenance refused"):  # a horizon under a day never drops
                async with conn.begin_nested():
                    await conn.execute(
                        text("SELECT prizeflow_inbox_maintain(now(), now() + interval '1 day', interval '1 day')")
                    )
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP OWNED BY {role}"))
            await conn.execute(text(f"DROP ROLE {role}"))


async def test_a_service_refuses_to_start_while_a_topic_outlives_its_horizon(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    week, forever = "prizeflow.retention.week.v1" + topic_suffix, "prizeflow.retention.forever.v1" + topic_suffix
    await provision_topics(
        kafka_bootstrap,
        [
            TopicSpec(week, 1, config={"retention.ms": str(7 * DAY_MS), "segment.ms": str(DAY_MS)}),
            TopicSpec(forever, 1, config={"retention.ms": "-1"}),
            TopicSpec(week + ".dlq", 1),
            TopicSpec(forever + ".dlq", 1),
        ],
    )
    described = await topic_retention_ms(kafka_bootstrap, [week, forever])
    assert described == {week: 8 * DAY_MS, forever: -1}  # a record may outlive retention.ms by a segment: 7 + 1 days
    assert horizon_problems({week: described[week]}, InboxSettings(dedup_horizon_days=10, max_replay_days=2)) == []
    (too_short,) = horizon_problems({week: described[week]}, InboxSettings(dedup_horizon_days=9, max_replay_days=2))
    assert week in too_short
    assert "INBOX_DEDUP_HORIZON_DAYS" in too_short
    assert horizon_problems({forever: -1}, InboxSettings(accept_infinite_retention=True)) == []

    settings = ServiceSettings(
        prizeflow_profile="dev",
        service_name="retention",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_suffix=topic_suffix,
        database_url="postgresql://nobody@127.0.0.1:1/none",  # never reached: the horizon check comes first
        startup_retry_max_ms=500,
        inbox=InboxSettings(dedup_horizon_days=10, max_replay_days=2),
    )
    runtime = ServiceRuntime(settings)
    runtime.add_consumer(
        "retention-test", ["prizeflow.retention.week.v1", "prizeflow.retention.forever.v1"], handler=_never
    )
    await runtime.start_in_background()
    try:

        async def waiting_for() -> str:
            try:
                await runtime.startup_ready()
            except NotReady as err:
                return str(err)
            return "ready"

        reason = await eventually(waiting_for, lambda r: "dedup horizon" in r, timeout=30)
        assert forever in reason
        assert "INBOX_ACCEPT_INFINITE_RETENTION" in reason
        assert week not in reason  # 7 days + 2 of replay fit in 10
        assert runtime.consumers == []  # nothing was ever consumed
    finally:
        await runtime.stop()


async def _never(*_: Any) -> None:
    raise AssertionError("nothing is consumed with a horizon Kafka can outlast")
