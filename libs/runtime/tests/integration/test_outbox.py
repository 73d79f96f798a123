"""Outbox atomicity and ordering, through the relay, to real Kafka."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from sample import thing
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import decode
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import asyncpg_dsn, session_factory
from prizeflow_runtime.outbox import (
    _RELAY_SESSION,
    _WATERMARK,
    REPLACE_PRODUCER_AFTER_FAILURES,
    OutboxRelay,
    abandon_producer,
    add_event,
    idempotent_producer,
)
from prizeflow_testkit import eventually, read_topic

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def test_rolled_back_transaction_publishes_nothing_and_committed_one_publishes_exactly_its_events(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    topic = "prizeflow.outbox-test" + topic_suffix
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
        unpublished = await conn.scalar(text("SELECT count(*) FROM outbox"))
        names = (await conn.execute(text("SELECT name FROM totals ORDER BY name"))).scalars().all()
    assert unpublished == 0
    assert names == ["all", "committed"]


async def test_relay_wakes_on_notify_and_publishes_to_the_suffixed_topic_without_waiting_for_the_poll(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    import asyncio

    from prizeflow_testkit import eventually

    topic = "prizeflow.outbox-notify"
    suffix = topic_suffix
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


async def test_relay_deletes_what_it_published_and_vacuums_the_outbox(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    from prizeflow_testkit import eventually

    topic = "prizeflow.outbox-vacuum" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    sessions = session_factory(engine)
    events = [thing(f"v-{i}", i) for i in range(30)]
    async with sessions() as session, session.begin():
        for env in events:
            await add_event(session, env, topic=topic)

    async def vacuums() -> int:
        async with engine.connect() as conn:
            value = await conn.scalar(
                text("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'outbox' AND schemaname = 'public'")
            )
            return int(value or 0)

    before = await vacuums()
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(
        database_url=engine.url.render_as_string(hide_password=False),
        producer=producer,
        batch_size=8,
        vacuum_every=20,
    )
    try:
        while (await relay.publish_once()).published:
            pass
        await eventually(vacuums, lambda n: n > before, timeout=15)  # 30 deleted >= 20: one VACUUM
    finally:
        await relay.stop()
        await producer.stop()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox")) == 0
    assert sorted(str(decode(r.value).id) for r in await read_topic(kafka_bootstrap, topic)) == sorted(
        str(e.id) for e in events
    )


async def test_migration_turns_a_marking_outbox_into_a_deleting_one_and_back(engine: AsyncEngine) -> None:
    """An outbox of the earlier schema (rows marked `published_at`): published rows go, pending rows stay."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from prizeflow_runtime.schema_history import messaging_0002_outbox_delete_on_publish as step

    outbox_delete_on_publish, outbox_mark_on_publish = step.upgrade, step.downgrade

    def run(step: Any) -> Any:
        return lambda sync_conn: step(Operations(MigrationContext.configure(sync_conn)))

    sessions = session_factory(engine)
    async with engine.begin() as conn:
        await conn.run_sync(run(outbox_mark_on_publish))  # the earlier schema
    async with sessions() as session, session.begin():
        for i in range(4):
            await add_event(session, thing(f"m-{i}", i), topic="prizeflow.migration-test")
        await session.execute(text("UPDATE outbox SET published_at = now() WHERE seq IN (SELECT min(seq) FROM outbox)"))

    async def columns() -> list[str]:
        async with engine.connect() as conn:
            names = await conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'outbox' ORDER BY 1")
            )
            return list(names.scalars())

    async with engine.begin() as conn:
        await conn.run_sync(run(outbox_delete_on_publish))
        await conn.run_sync(run(outbox_delete_on_publish))  # idempotent
    assert "published_at" not in await columns()
    async with engine.connect() as conn:
        pending = (await conn.execute(text("SELECT payload FROM outbox ORDER BY seq"))).scalars().all()
    assert [decode(bytes(p)).data.thing_id for p in pending] == ["m-1", "m-2", "m-3"]  # type: ignore[attr-defined]

    async with engine.begin() as conn:
        await conn.run_sync(run(outbox_mark_on_publish))
    assert "published_at" in await columns()
    async with engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")) == 3


async def test_two_writers_of_one_key_are_published_in_outbox_order_when_the_later_commits_first(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Writer 1 stages its event first (lower seq) but commits last; writer 2 stages and commits in between.
    The relay must not publish writer 2's event before writer 1's: it waits for the open writer."""
    topic = "prizeflow.outbox-order" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    sessions = session_factory(engine)
    first, second = thing("first", correlation_id="one-key"), thing("second", correlation_id="one-key")
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(
        database_url=str(engine.url.render_as_string(hide_password=False)), producer=producer, batch_size=16
    )
    try:
        async with sessions() as writer1, writer1.begin():
            await add_event(writer1, first, topic=topic)  # seq n, uncommitted
            async with sessions() as writer2, writer2.begin():
                await add_event(writer2, second, topic=topic)  # seq n+1
            # writer 2 committed; writer 1 is still open. Let the relay look now.
            publishing = asyncio.create_task(relay.publish_once())

            async def relay_state() -> str:
                return "done" if publishing.done() else "waiting" if relay.waiting_for_writers else "reading"

            await eventually(relay_state, lambda s: s in ("done", "waiting"), timeout=10, interval=0.01)
        await publishing  # writer 1 committed on leaving the block
        while (await relay.publish_once()).published:
            pass
    finally:
        await relay.stop()  # its connection closed here, never by the garbage collector in another test's teardown
        await producer.stop()
    order = [decode(r.value or b"").data.thing_id for r in await read_topic(kafka_bootstrap, topic)]  # type: ignore[attr-defined]
    assert order == ["first", "second"]


async def test_events_staged_first_in_a_transaction_are_rolled_back_with_it(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    """The outbox COPY goes to the driver directly; as a transaction's first statement it must still be inside
    the transaction (SQLAlchemy begins lazily), so a rollback takes the event with it."""
    sessions = session_factory(engine)
    with pytest.raises(Boom):
        async with sessions() as session, session.begin():
            await add_event(session, thing("never", correlation_id="k-rb"), topic="prizeflow.never")
            raise Boom
    async with engine.connect() as conn:
        staged = await conn.scalar(text("SELECT count(*) FROM outbox WHERE topic = 'prizeflow.never'"))
    assert staged == 0


async def test_an_idle_relay_reads_only_the_sequence_and_still_publishes_what_comes_later(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Once everything handed out is published, a poll is one sequence read: it does not wait for a session that
    holds the outbox's writer lock without having taken a seq (the full path would). The next event still goes."""
    topic = "prizeflow.outbox-idle" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    sessions = session_factory(engine)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    relay = OutboxRelay(
        database_url=str(engine.url.render_as_string(hide_password=False)), producer=producer, batch_size=16
    )
    try:
        async with sessions() as session, session.begin():
            await add_event(session, thing("early"), topic=topic)
        assert (await relay.publish_once()).published == 1
        async with sessions() as locker, locker.begin():
            await locker.execute(text("LOCK TABLE outbox IN ROW EXCLUSIVE MODE"))  # a writer's lock, no seq taken
            polling = asyncio.create_task(relay.publish_once())

            async def relay_state() -> str:
                return "done" if polling.done() else "waiting" if relay.waiting_for_writers else "reading"

            assert await eventually(relay_state, lambda s: s in ("done", "waiting"), timeout=10, interval=0.01) == (
                "done"
            )
            assert (await polling).published == 0
        async with sessions() as session, session.begin():
            await add_event(session, thing("later"), topic=topic)
        assert (await relay.publish_once()).published == 1
    finally:
        await relay.stop()
        await producer.stop()
    order = [decode(r.value or b"").data.thing_id for r in await read_topic(kafka_bootstrap, topic)]  # type: ignore[attr-defined]
    assert order == ["early", "later"]


async def test_the_relays_session_never_jit_compiles_its_poll(engine: AsyncEngine) -> None:
    """With sequential scans priced out, the seq read was planned past `jit_above_cost` and JIT-compiled at every
    poll (~15 ms of server CPU for a 0.04 ms read). The relay's session turns JIT off."""
    conn = await asyncpg.connect(asyncpg_dsn(engine.url.render_as_string(hide_password=False)))
    try:
        sequence = await conn.fetchval("SELECT pg_get_serial_sequence('outbox', 'seq')")
        poll = _WATERMARK.format(sequence=sequence)
        await conn.execute("SET enable_seqscan = off; SET jit_above_cost = 100000")  # the server default, pinned
        (planned,) = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + poll))
        assert ("JIT" in planned) == await conn.fetchval("SELECT pg_jit_available()")  # what a poll cost before
        await conn.execute("RESET ALL")
        await conn.execute(_RELAY_SESSION)
        (planned,) = json.loads(await conn.fetchval("EXPLAIN (ANALYZE, FORMAT JSON) " + poll))
        assert "JIT" not in planned
    finally:
        await conn.close()


class _StalledProducer:
    """A real producer whose batches Kafka 'never acknowledges': what an idempotent aiokafka producer does when it
    retries a batch forever after a broker restart. Everything but `send_batch` is the real one's."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.submitted = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        self.submitted += 1
        return asyncio.get_running_loop().create_future()  # never resolved


class _FailingProducer(_StalledProducer):
    """A real producer whose every batch fails at once with `error`: what an idempotent aiokafka producer answers
    for good once a restarted broker no longer knows its producer id (OutOfOrderSequenceNumber, batch after batch)."""

    def __init__(self, real: Any, error: Exception) -> None:
        super().__init__(real)
        self._error = error

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        failed = await super().send_batch(builder, topic, partition=partition)
        failed.set_exception(self._error)
        return failed


async def _drains_once_in_order_through_a_renewed_producer(
    engine: AsyncEngine,
    kafka_bootstrap: str,
    topic: str,
    bad: Callable[[Any], _StalledProducer],
    **relay_options: Any,
) -> _StalledProducer:
    """Five events of one key staged; a relay starts on `bad(a real producer)` and renews it: the events reach
    Kafka once, in order, through the new producer (and no other), and the outbox empties. The bad producer back."""
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    real = idempotent_producer(kafka_bootstrap)
    await real.start()
    broken = bad(real)
    renewed: list[Any] = []

    async def renew(old: Any) -> Any:
        assert old is broken
        fresh = idempotent_producer(kafka_bootstrap)
        await fresh.start()
        renewed.append(fresh)
        await real.stop()  # the test's stand-in for abandon_producer: the real one holds nothing unacknowledged
        return fresh

    async with session_factory(engine)() as session, session.begin():
        for i in range(5):
            await add_event(session, thing(f"e-{i}", i, correlation_id="key-renewed"), topic=topic)
    relay = OutboxRelay(
        database_url=str(engine.url.render_as_string(hide_password=False)),
        producer=broken,
        poll_interval=0.05,
        renew_producer=renew,
        **relay_options,
    )
    task = asyncio.create_task(relay.run())
    try:

        async def published() -> list[str]:
            return [decode(r.value or b"").data.thing_id for r in await read_topic(kafka_bootstrap, topic)]  # type: ignore[attr-defined]

        assert await eventually(published, lambda ids: len(ids) >= 5, timeout=20) == [f"e-{i}" for i in range(5)]
        assert renewed == [relay.producer]

        async def left() -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM outbox"))).scalar_one())

        await eventually(left, lambda n: n == 0, timeout=10)
    finally:
        await relay.stop()
        task.cancel()
        for producer in renewed:
            await producer.stop()
    return broken


async def test_a_stalled_producer_is_replaced_and_the_outbox_still_drains_once_in_order(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """A batch left unacknowledged past the ack timeout: the relay gives up its leadership, abandons the producer
    (without the flush its `stop()` would wait on forever) and publishes the same rows, in order, through a new one.
    Nothing left the outbox that Kafka did not acknowledge."""
    stalled = await _drains_once_in_order_through_a_renewed_producer(
        engine, kafka_bootstrap, "prizeflow.outbox-stall" + topic_suffix, _StalledProducer, ack_timeout=0.5
    )
    assert stalled.submitted >= 1


@pytest.mark.parametrize(
    ("error", "tries"),
    [
        (OutOfOrderSequenceNumber(), 1),  # a producer only a new one replaces: at the first failure
        (RuntimeError("a failure nobody foresaw"), REPLACE_PRODUCER_AFTER_FAILURES),  # any other, repeated
    ],
    ids=["broken-producer", "repeated-failure"],
)
async def test_a_producer_that_fails_every_batch_is_replaced_and_the_outbox_drains_once_in_order(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, error: Exception, tries: int
) -> None:
    """A fault test's drain once waited 300 s on an outbox whose producer got OutOfOrderSequenceNumber for every
    batch after a Kafka restart, retried through the same producer forever. Now the relay renews it: the rows go out
    in order through the new one, and nothing left the outbox that Kafka did not acknowledge."""
    failing = await _drains_once_in_order_through_a_renewed_producer(
        engine, kafka_bootstrap, "prizeflow.outbox-broken" + topic_suffix, lambda real: _FailingProducer(real, error)
    )
    assert failing.submitted == tries  # renewed after exactly that many failed publishes, not before


async def test_abandoning_a_producer_returns_even_with_a_batch_kafka_never_acknowledges(kafka_bootstrap: str) -> None:
    """`abandon_producer` on a producer whose `stop()` would wait forever for a batch: bounded, and closed."""
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    original = producer._message_accumulator.close

    async def close_waiting_forever() -> None:
        await never  # what flushing a batch the broker never acknowledges looks like to stop()

    producer._message_accumulator.close = close_waiting_forever
    try:
        await asyncio.wait_for(abandon_producer(producer, grace=0.2), timeout=10)
    finally:
        producer._message_accumulator.close = original
        never.cancel()
    assert producer._sender.sender_task.done()
