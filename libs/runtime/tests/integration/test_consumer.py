"""Reliable consumption on real Kafka + PostgreSQL: inbox dedup, retry in place, DLQ, no skipped message."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord
from harness import outbox_drained, publish, rewind, running_consumer, running_relay
from prometheus_client import CollectorRegistry
from sample import apply_thing, thing, totals, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, decode
from prizeflow_contracts.errors import EventRefusal
from prizeflow_runtime.broker import attach_consumer, create_broker, ensure_topics
from prizeflow_runtime.consumer import EventHandler, ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.dead_letters import DLQ_ATTEMPTS, DLQ_ERROR, DLQ_ORIGINAL_OFFSET, DLQ_REASON
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import RetrySettings
from prizeflow_testkit import header, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

FAST_RETRY = RetrySettings(max_attempts=3, backoff_initial_ms=20, backoff_max_ms=50)


async def test_same_event_three_times_is_applied_once(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    topic = "prizeflow.dedup" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic])
    group = unique("dedup-consumer")
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    registry = CollectorRegistry()
    metrics = RuntimeMetrics.create("test", registry)
    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=session_factory(engine),
        handler=apply_thing,
        retry=FAST_RETRY,
        metrics=metrics,
    )
    event = thing("once", 7)
    try:
        # Delivery 1 and 2: a duplicate publish (e.g. a relay that crashed before marking its batch).
        await publish(producer, topic, [event, event])
        async with running_consumer(kafka_bootstrap, consumer):
            await wait_caught_up(kafka_bootstrap, group, topic)
        assert await totals(engine) == (7, 1)

        # Delivery 3 and 4: the group's offsets are reset to the beginning and everything is redelivered.
        await rewind(kafka_bootstrap, group, topic)

        async with running_consumer(kafka_bootstrap, consumer):
            await wait_caught_up(kafka_bootstrap, group, topic)
    finally:
        await producer.stop()

    assert await totals(engine) == (7, 1)
    applied = registry.get_sample_value(
        "prizeflow_test_events_consumed_total", {"consumer": group, "topic": topic, "outcome": "applied"}
    )
    duplicates = registry.get_sample_value("prizeflow_test_events_duplicate_total", {"consumer": group, "topic": topic})
    assert applied == 1
    assert duplicates == 3  # 4 deliveries, 1 application
    async with engine.connect() as conn:
        inbox_rows = await conn.scalar(text("SELECT count(*) FROM inbox WHERE consumer = :c"), {"c": group})
    assert inbox_rows == 1


async def test_failing_handler_is_retried_then_dead_lettered_and_later_messages_wait_for_it(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    topic = "prizeflow.dlq" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic])
    group = unique("dlq-consumer")
    attempts: list[str] = []

    async def handler(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
        attempts.append(envelope.data.thing_id)  # type: ignore[attr-defined]
        await apply_thing(session, envelope)

    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=session_factory(engine),
        handler=handler,
        retry=FAST_RETRY,
    )
    # One key → one partition: before, poison, malformed, after1, after2, in that order.
    before, poison, after1, after2 = (
        thing("before", 1, correlation_id="k"),
        thing("poison", 100, correlation_id="k", poison=True),
        thing("after-1", 10, correlation_id="k"),
        thing("after-2", 20, correlation_id="k"),
    )
    try:
        await publish(producer, topic, [before, poison])
        await producer.send_and_wait(topic, b"{not json", key=b"k")
        await publish(producer, topic, [after1, after2])
        # max_records=1: each message is its own poll, the shape FastStream #1980/#2618 skipped messages in.
        async with running_relay(kafka_bootstrap, engine), running_consumer(kafka_bootstrap, consumer, max_records=1):
            await wait_caught_up(kafka_bootstrap, group, topic)
            await outbox_drained(engine)
    finally:
        await producer.stop()

    # The poison message was tried max_attempts times before anything after it was applied.
    assert attempts == ["before", "poison", "poison", "poison", "after-1", "after-2"]
    assert await totals(engine) == (31, 3)

    dead = await read_topic(kafka_bootstrap, topic + ".dlq")
    reasons = {header(r, DLQ_REASON): r for r in dead}
    assert set(reasons) == {"handler_failed", "malformed_json"}
    failed = reasons["handler_failed"]
    assert decode(failed.value).id == poison.id
    assert header(failed, DLQ_ATTEMPTS) == "3"
    assert "poison thing poison cannot be applied" in (header(failed, DLQ_ERROR) or "")
    assert header(reasons["malformed_json"], DLQ_ATTEMPTS) == "0"

    # Nothing skipped: every offset of the partition is either applied (inbox) or dead-lettered, and a
    # dead-lettered event with a readable id is remembered as processed (refused), so a replay skips it.
    source = await read_topic(kafka_bootstrap, topic)
    async with engine.connect() as conn:
        outcomes = {row.offset: row.outcome for row in await conn.execute(text('SELECT "offset", outcome FROM inbox'))}
        letters = (await conn.execute(text('SELECT "offset", reason FROM dead_letters ORDER BY 1'))).all()
    applied_offsets = {o for o, outcome in outcomes.items() if outcome == "applied"}
    dead_offsets = {int(header(r, DLQ_ORIGINAL_OFFSET) or -1) for r in dead}
    assert {r.offset for r in source} == applied_offsets | dead_offsets
    assert not applied_offsets & dead_offsets
    # One key, one partition: before 0, poison 1, malformed 2, after-1 3, after-2 4.
    assert {o for o, outcome in outcomes.items() if outcome == "refused"} == {1}
    assert [tuple(row) for row in letters] == [(1, "handler_failed"), (2, "malformed_json")]


async def _fifty_of_one_key_with_t25_bad(
    engine: AsyncEngine, kafka_bootstrap: str, topic: str, handler: EventHandler, *, poison: bool
) -> tuple[list[ConsumerRecord[bytes, bytes]], int]:
    """t0..t49 of one key (t25 poisoned if `poison`) consumed by `handler`, up to 500 records a poll: every record
    but t25 applied once, in order, and t25 alone dead-lettered. Its dead letters and the sessions it opened."""
    await ensure_topics(kafka_bootstrap, [topic])
    group = unique("batch-consumer")
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    sessions = session_factory(engine)
    opened = 0

    def counted() -> AsyncSession:
        nonlocal opened
        opened += 1
        return sessions()

    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=counted,  # type: ignore[arg-type]
        handler=handler,
        retry=FAST_RETRY,
    )
    events = [thing(f"t{i}", i, correlation_id="same", poison=poison and i == 25) for i in range(50)]
    try:
        await publish(producer, topic, events)
        async with running_relay(kafka_bootstrap, engine), running_consumer(kafka_bootstrap, consumer, max_records=500):
            await wait_caught_up(kafka_bootstrap, group, topic)
            await outbox_drained(engine)
    finally:
        await producer.stop()
    assert await totals(engine) == (sum(range(50)) - 25, 49)
    async with engine.connect() as conn:
        order = (await conn.execute(text("SELECT thing_id FROM effects ORDER BY applied_seq"))).scalars().all()
    assert order == [f"t{i}" for i in range(50) if i != 25]
    dead = await read_topic(kafka_bootstrap, topic + ".dlq")
    assert [decode(r.value).id for r in dead] == [events[25].id]
    return dead, opened


async def test_poll_batch_with_one_poison_applies_the_rest_in_order(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    _, opened = await _fifty_of_one_key_with_t25_bad(
        engine, kafka_bootstrap, "prizeflow.batch" + topic_suffix, apply_thing, poison=True
    )
    # Halving to the poison: about 2*log2(50) batch transactions, its 3 attempts and its dead letter; one
    # transaction per record (50+) before. Several polls may split the 50 records, so allow for a few more.
    assert opened < 35, opened


async def test_a_refused_event_in_a_poll_costs_a_few_transactions_not_one_per_record(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """A refusal names its event: the records before it apply together, it is dead-lettered, the rest together."""

    async def refuse_t25(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
        if getattr(envelope.data, "thing_id", None) == "t25":
            raise EventRefusal("illegal_transition", "t25 cannot happen now")
        await apply_thing(session, envelope)

    dead, opened = await _fifty_of_one_key_with_t25_bad(
        engine, kafka_bootstrap, "prizeflow.refusedbatch" + topic_suffix, refuse_t25, poison=False
    )
    assert header(dead[0], DLQ_REASON) == "illegal_transition"
    # The poll, t0..t24 together, t25 alone and its dead letter, t26..t49 together: 5 (more if polls split it).
    assert opened <= 10, opened


async def test_lanes_apply_partitions_concurrently_in_order_and_isolate_a_poison(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Three lanes over three partitions: each flow in order, once; the poison's lane falls back alone."""
    topic = "prizeflow.lanes" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic])  # 3 partitions
    group = unique("lanes-consumer")
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=session_factory(engine),
        handler=apply_thing,
        retry=FAST_RETRY,
        lanes=3,
    )
    flows = [f"flow-{n}" for n in range(9)]
    events = [
        thing(f"{flow}-{i}", 1, correlation_id=flow, poison=(flow, i) == ("flow-4", 3))
        for i in range(8)
        for flow in flows
    ]
    try:
        await publish(producer, topic, events)
        async with running_relay(kafka_bootstrap, engine), running_consumer(kafka_bootstrap, consumer, max_records=500):
            await wait_caught_up(kafka_bootstrap, group, topic)
            await outbox_drained(engine)
    finally:
        await producer.stop()
    assert await totals(engine) == (71, 71)
    async with engine.connect() as conn:
        order = (await conn.execute(text("SELECT thing_id FROM effects ORDER BY applied_seq"))).scalars().all()
    for flow in flows:
        assert [t for t in order if t.startswith(flow + "-")] == [
            f"{flow}-{i}" for i in range(8) if (flow, i) != ("flow-4", 3)
        ]
    dead = await read_topic(kafka_bootstrap, topic + ".dlq")
    assert [decode(r.value).data.thing_id for r in dead] == ["flow-4-3"]  # type: ignore[attr-defined]


async def test_clients_are_configured_for_effectively_once(kafka_bootstrap: str, topic_suffix: str) -> None:
    """Asserted on the live clients, not on our own config dicts."""
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        assert producer._sender._acks == -1  # acks=all
        assert producer._txn_manager is not None  # idempotence on
        assert producer._txn_manager.producer_id >= 0  # ...and granted a producer id by the broker
    finally:
        await producer.stop()

    topic = "prizeflow.config" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic])
    broker = create_broker(kafka_bootstrap, client_id="config-check")
    sub = attach_consumer(
        broker,
        ReliableConsumer(
            name=unique("config"),
            topics=[topic],
            session_factory=None,  # type: ignore[arg-type]
            handler=apply_thing,
        ),
    )
    await broker.start()
    try:
        live = sub.consumer
        for _ in range(50):
            if live is not None:
                break
            await asyncio.sleep(0.05)
            live = sub.consumer
        assert live is not None
        assert live._enable_auto_commit is False
        assert live._group_id.startswith("config-")
        assert live._auto_offset_reset == "earliest"
    finally:
        await broker.stop()


async def test_a_consumer_skips_the_types_it_does_not_act_on_before_decoding_and_before_the_inbox(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """`acts_on`: a record whose type header names another type costs no decode, no inbox row, no transaction, and
    its offset passes with the poll's; a record without the header is decoded and handled as before."""
    topic = "prizeflow.skip" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic])
    group = unique("skip-consumer")
    registry = CollectorRegistry()
    consumer = ReliableConsumer(
        name=group,
        topics=[topic],
        session_factory=session_factory(engine),
        handler=apply_thing,
        retry=FAST_RETRY,
        metrics=RuntimeMetrics.create("test", registry),
        acts_on=frozenset({"SomethingElseHappened"}),
    )
    skipped = [thing(unique("skipped"), 5) for _ in range(4)]
    bare = thing(unique("bare"), 3)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        await publish(producer, topic, skipped)
        await producer.send_and_wait(topic, bare.encode(), key=bare.key)  # no type header: decoded, handled
        async with running_consumer(kafka_bootstrap, consumer):
            await wait_caught_up(kafka_bootstrap, group, topic)
    finally:
        await producer.stop()

    async with engine.connect() as conn:
        inboxed = set(await conn.scalars(text("SELECT event_id FROM inbox WHERE consumer = :c"), {"c": group}))
        effects = set(
            await conn.scalars(
                text("SELECT event_id FROM effects WHERE event_id = ANY(:ids)"),
                {"ids": [e.id for e in [*skipped, bare]]},
            )
        )
    assert inboxed == {bare.id}
    assert effects == {bare.id}
    outcomes = {
        outcome: registry.get_sample_value(
            "prizeflow_test_events_consumed_total", {"consumer": group, "topic": topic, "outcome": outcome}
        )
        for outcome in ("skipped", "applied")
    }
    assert outcomes == {"skipped": 4, "applied": 1}
