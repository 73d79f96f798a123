"""Running a ReliableConsumer (and its database's outbox relay) against real Kafka in a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope
from prizeflow_runtime.broker import attach_consumer, create_broker
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.outbox import OutboxRelay, idempotent_producer
from prizeflow_testkit import eventually


@asynccontextmanager
async def running_consumer(
    kafka_bootstrap: str, consumer: ReliableConsumer, *, max_records: int = 100
) -> AsyncIterator[None]:
    broker = create_broker(kafka_bootstrap, client_id=consumer.name)
    attach_consumer(broker, consumer, max_records=max_records)
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


@asynccontextmanager
async def running_relay(
    kafka_bootstrap: str, engine: AsyncEngine, *, topic_suffix: str = ""
) -> AsyncIterator[OutboxRelay]:
    """The outbox relay of the consumer's database: DLQ copies are staged there, like every event."""
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(
        database_url=engine.url.render_as_string(hide_password=False),
        producer=producer,
        poll_interval=0.05,
        topic_suffix=topic_suffix,
    )
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        await relay.stop()
        await task
        await producer.stop()


async def outbox_drained(engine: AsyncEngine) -> None:
    async def pending() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(text("SELECT count(*) FROM outbox")) or 0)

    await eventually(pending, lambda n: n == 0)


async def publish(producer: AIOKafkaProducer, topic: str, envelopes: Sequence[Envelope[Any]]) -> None:
    for env in envelopes:
        await producer.send_and_wait(topic, env.encode(), key=env.key, headers=env.headers())


async def rewind(kafka_bootstrap: str, group: str, topic: str, partitions: int = 3) -> None:
    """Commit offset 0 on every partition for `group`: the operator's "replay the topic" move."""
    reset = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await reset.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        reset.assign(tps)
        await reset.commit(dict.fromkeys(tps, 0))
    finally:
        await reset.stop()
