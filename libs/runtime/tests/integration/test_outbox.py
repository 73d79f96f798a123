"""Outbox atomicity and ordering, through the relay, to real Kafka."""

from __future__ import annotations

from collections import defaultdict

import pytest
from sample import thing, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import decode
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.outbox import OutboxRelay, add_event, idempotent_producer
from prizeflow_runtime.testing import read_topic

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def test_rolled_back_transaction_publishes_nothing_and_committed_one_publishes_exactly_its_events(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    topic = unique("prizeflow.outbox-test")
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    sessions = session_factory(engine)

    rolled_back = [thing(f"rb-{i}", correlation_id="key-rb") for i in range(3)]
    with pytest.raises(Boom):
        async with sessions() as session, session.begin():
            await session.execute(text("INSERT INTO totals VALUES ('rolled-back', 1, 1)"))
            for env in rolled_back:
                await add_event(session, env, topic=topic)
            raise Boom

    # Interleave two keys so per-key order is a real property, not an accident of one key.
    committed = [thing(f"c-{i}", i, correlation_id=("key-a" if i % 2 else "key-b")) for i in range(40)]
    async with sessions() as session, session.begin():
        await session.execute(text("INSERT INTO totals VALUES ('committed', 1, 1)"))
        for env in committed:
            await add_event(session, env, topic=topic)

    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(
            database_url=str(engine.url.render_as_string(hide_password=False)),
            producer=producer,
            batch_size=16,
        )
        published = 0
        for _ in range(10):
            result = await relay.publish_once()
            published += result.published
            if result.published == 0:
                break
        await relay.stop()
    finally:
        await producer.stop()

    assert published == len(committed)
    records = await read_topic(kafka_bootstrap, topic)
    got = [decode(r.value) for r in records]
    assert sorted(str(e.id) for e in got) == sorted(str(e.id) for e in committed)
    assert not {e.id for e in rolled_back} & {e.id for e in got}

    by_key: dict[str, list[str]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key.decode()].append(str(decode(r.value).id))
    for key in ("key-a", "key-b"):
        assert by_key[key] == [str(e.id) for e in committed if e.correlationid == key]

    async with engine.connect() as conn:
        unpublished = await conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
        names = (await conn.execute(text("SELECT name FROM totals ORDER BY name"))).scalars().all()
    assert unpublished == 0
    assert names == ["all", "committed"]


async def test_relay_wakes_on_notify_and_publishes_to_the_suffixed_topic_without_waiting_for_the_poll(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    import asyncio

    from prizeflow_runtime.testing import eventually

    topic = unique("prizeflow.outbox-notify")
    suffix = ".isolated"
    await ensure_topics(kafka_bootstrap, [topic + suffix], with_dlq=False)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(
        database_url=engine.url.render_as_string(hide_password=False),
        producer=producer,
        poll_interval=30.0,
        topic_suffix=suffix,
    )
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # let the relay reach its idle wait, so only NOTIFY can wake it
        async with session_factory(engine)() as session, session.begin():
            await add_event(session, thing("notify"), topic=topic)

        async def count() -> int:
            return len(await read_topic(kafka_bootstrap, topic + suffix))

        await eventually(count, lambda n: n == 1, timeout=10.0)
    finally:
        await relay.stop()
        task.cancel()
        await producer.stop()
