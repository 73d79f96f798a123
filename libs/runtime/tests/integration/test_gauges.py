"""The gauges behind the outbox and lag alerts, on real PostgreSQL and Kafka: the oldest pending outbox row's age,
which relay holds the lock, and a consumer group's lag read through aiokafka."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry
from sample import thing
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.topics import Topic
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.gauges import consumer_lag
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import OutboxRelay, add_event, idempotent_producer, oldest_pending_age

pytestmark = pytest.mark.integration


def leader(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("prizeflow_relay_outbox_relay_leader")


async def test_the_oldest_pending_row_s_age_and_which_relay_leads_are_what_the_metrics_say(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    topic = "prizeflow.outbox-gauges" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    async with engine.connect() as conn:
        assert await oldest_pending_age(conn) == 0.0  # an empty outbox
    async with session_factory(engine)() as session, session.begin():
        await add_event(session, thing("old"), topic=topic)
        await add_event(session, thing("new"), topic=topic)
        await session.execute(text("UPDATE outbox SET created_at = now() - interval '90 seconds' WHERE seq = 1"))
    async with engine.connect() as conn:
        assert 90 <= await oldest_pending_age(conn) < 120

    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    url = engine.url.render_as_string(hide_password=False)
    first, second = CollectorRegistry(), CollectorRegistry()
    a = OutboxRelay(database_url=url, producer=producer, metrics=RuntimeMetrics.create("relay", first))
    b = OutboxRelay(database_url=url, producer=producer, metrics=RuntimeMetrics.create("relay", second))
    try:
        assert (leader(first), leader(second)) == (0, 0)
        assert (await a.publish_once()).published == 2
        assert not (await b.publish_once()).leader
        assert (leader(first), leader(second)) == (1, 0)
        async with engine.connect() as conn:
            assert await oldest_pending_age(conn) == 0.0  # published rows are gone
        await a.stop()  # releases the lock: the other relay takes over at its next poll
        assert leader(first) == 0
        assert (await b.publish_once()).leader
        assert leader(second) == 1
    finally:
        await a.stop()
        await b.stop()
        await producer.stop()
    assert leader(second) == 0


async def test_a_group_s_lag_is_read_from_its_committed_offsets_and_the_log_end(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    topic = "prizeflow.lag-gauges" + topic_suffix
    await ensure_topics(kafka_bootstrap, [Topic(topic, "tests", (), 2)], with_dlq=False)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(10):
            await producer.send_and_wait(topic, b"x", partition=0 if n < 7 else 1)
    finally:
        await producer.stop()
    member = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id="lag-gauges" + topic_suffix, enable_auto_commit=False
    )
    await member.start()
    try:
        member.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        assert await consumer_lag(member, [topic]) == {topic: 10}  # nothing committed: from the log start
        await member.commit({TopicPartition(topic, 0): 5})
        assert await consumer_lag(member, [topic]) == {topic: 2 + 3}
    finally:
        await member.stop()
