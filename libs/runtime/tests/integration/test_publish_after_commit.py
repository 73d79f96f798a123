"""Publish after commit, on real PostgreSQL and Kafka: the writer publishes its own events, the relay only sweeps
what a crash or a failed publish left, and a key's events still reach Kafka in commit order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sample import thing
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import decode
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.outbox import OutboxRelay, add_events, idempotent_producer, publish_after_commit
from prizeflow_runtime.outbox_publisher import OutboxPublisher
from prizeflow_testkit import Process, eventually, read_topic

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("publish_crash_app.py")
NEVER = 3_600.0  # the relay's usual sweep_after here: it sweeps when a publisher asks, or what it finds taking the lead


class _FailingProducer:
    """A real producer whose batches all fail while `failing` is set (Kafka refusing them)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.failing = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        if self.failing:
            raise ConnectionError("kafka refused the batch")
        future: asyncio.Future[Any] = await self._real.send_batch(builder, topic, partition=partition)
        return future


@dataclass
class Publishing:
    relay: OutboxRelay
    publisher: OutboxPublisher
    tasks: list[asyncio.Task[None]]

    async def start_relay(self) -> None:
        """Run the relay and wait until it leads (connected and listening: a sweep asked for from now on is heard).
        Taking the lead, it sweeps the whole outbox once."""
        self.tasks.append(asyncio.create_task(self.relay.run()))

        async def leading() -> bool:
            return self.relay.leader

        await eventually(leading, bool, timeout=30)


@pytest.fixture
async def publishing(engine: AsyncEngine, kafka_bootstrap: str) -> AsyncIterator[Callable[..., Any]]:
    """Starts this process's publisher after commit and (unless told not to yet) a relay that sweeps only when asked
    or when it takes the lead."""
    url = engine.url.render_as_string(hide_password=False)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    started: list[Publishing] = []

    async def start(publisher_producer: Any = None, *, relay: bool = True, sweep_after: float = NEVER) -> Publishing:
        chosen = publisher_producer if publisher_producer is not None else producer
        publisher = OutboxPublisher(database_url=url, producer=lambda: chosen)
        publish_after_commit(engine, publisher)
        running = Publishing(
            OutboxRelay(database_url=url, producer=producer, sweep_after=sweep_after),
            publisher,
            [asyncio.create_task(publisher.run())],
        )
        started.append(running)
        if relay:
            await running.start_relay()
        return running

    yield start
    publish_after_commit(engine, None)
    for running in started:
        running.publisher.stop()
        await running.relay.stop()
        await asyncio.gather(*running.tasks, return_exceptions=True)
    await producer.stop()


async def _commit(engine: AsyncEngine, topic: str, *events: Any) -> None:
    async with session_factory(engine)() as session, session.begin():
        await add_events(session, list(events), topic=topic)


async def _outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM outbox")) or 0)


async def _by_key(kafka_bootstrap: str, topic: str) -> dict[str, list[str]]:
    """Each key's thing ids in partition order (a copy sent again after the first stays in the list)."""
    records = sorted(await read_topic(kafka_bootstrap, topic), key=lambda r: (r.partition, r.offset))
    by_key: dict[str, list[str]] = defaultdict(list)
    for r in records:
        by_key[r.key.decode()].append(decode(r.value or b"").data.thing_id)  # type: ignore[attr-defined]
    return dict(by_key)


def _first_seen(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))  # what a consumer deduplicating by event id applies, in order


async def test_a_writer_killed_between_commit_and_publish_loses_nothing_and_its_keys_keep_their_order(
    engine: AsyncEngine,
    fresh_database: str,
    kafka_bootstrap: str,
    topic_suffix: str,
    tmp_path: Path,
    publishing: Callable[..., Any],
) -> None:
    topic = "prizeflow.publish-crash" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    env = {"DATABASE_URL": fresh_database, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    crashing = Process([sys.executable, str(APP), topic], env, tmp_path / "crashing.log").spawn()
    try:
        code = crashing.wait(timeout=90)
    finally:
        crashing.kill()
    assert code == -signal.SIGKILL, crashing.output()
    assert "committed; killing myself before the publish" in crashing.output()
    assert await _outbox_rows(engine) == 2  # a1 and b1 committed...
    assert await read_topic(kafka_bootstrap, topic) == []  # ...and none reached Kafka

    survivor = await publishing(relay=False, sweep_after=2.0)
    await _commit(engine, topic, thing("a2", correlation_id="key-a"))  # a1, of the same key, still waits

    async def left_to_the_relay() -> int:
        return int(survivor.publisher.left_behind)

    await eventually(left_to_the_relay, lambda n: n == 1, timeout=60)
    assert await _outbox_rows(engine) == 3  # a2 did not overtake a1: it waits behind it
    # Taking the lead, the relay sweeps the crash's rows at once, then a2 once it is old enough: in seq order.
    await survivor.start_relay()
    await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)
    await _commit(engine, topic, thing("c1", correlation_id="key-c"))  # a key with nothing waiting
    await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)

    async def four_keys_seen() -> dict[str, list[str]]:
        return await _by_key(kafka_bootstrap, topic)

    by_key = await eventually(four_keys_seen, lambda got: sum(map(len, got.values())) >= 4, timeout=60)
    assert _first_seen(by_key["key-a"]) == ["a1", "a2"]  # a2 never overtook a1
    assert _first_seen(by_key["key-b"]) == ["b1"]  # the crash lost nothing
    assert by_key["key-c"] == ["c1"]  # published once, by its writer
    # a2 waited for the relay, which swept the crash's rows and a2 in seq order; c1 went out right after its commit.
    assert (survivor.relay.swept, survivor.publisher.published) == (3, 1)


async def test_live_writers_publish_their_own_events_once_in_commit_order_and_the_relay_publishes_none(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, publishing: Callable[..., Any]
) -> None:
    topic = "prizeflow.publish-live" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    running = await publishing()
    keys = ("k-1", "k-2", "k-3")
    expected: dict[str, list[str]] = defaultdict(list)
    for tx in range(10):
        events = [thing(f"t{tx}-{key}", correlation_id=key) for key in keys]
        for key in keys:
            expected[key].append(f"t{tx}-{key}")
        await _commit(engine, topic, *events)
    await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)

    async def everything() -> dict[str, list[str]]:
        return await _by_key(kafka_bootstrap, topic)

    by_key = await eventually(everything, lambda got: sum(map(len, got.values())) >= 30, timeout=60)
    assert by_key == expected  # each once, in commit order per key
    assert (running.relay.swept, running.publisher.published) == (0, 30)


async def test_a_failed_publish_is_swept_by_the_relay_and_the_keys_next_event_follows_it(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, publishing: Callable[..., Any]
) -> None:
    topic = "prizeflow.publish-failed" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        refusing = _FailingProducer(producer)
        running = await publishing(refusing)
        await _commit(engine, topic, thing("x1", correlation_id="key-x"))
        await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)  # the relay swept it
        refusing.failing = False
        await _commit(engine, topic, thing("x2", correlation_id="key-x"))
        await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)
    finally:
        await producer.stop()
    assert (await _by_key(kafka_bootstrap, topic))["key-x"] == ["x1", "x2"]
    assert (running.relay.swept, running.publisher.published, running.publisher.left_behind) == (1, 1, 1)


async def test_events_rolled_back_with_a_savepoint_are_not_published_and_the_rest_are(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, publishing: Callable[..., Any]
) -> None:
    topic = "prizeflow.publish-savepoint" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    running = await publishing()
    async with session_factory(engine)() as session, session.begin():
        await add_events(session, [thing("kept", correlation_id="key-s")], topic=topic)
        savepoint = await session.begin_nested()
        await add_events(session, [thing("undone", correlation_id="key-s")], topic=topic)
        await savepoint.rollback()
    await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)

    async def published() -> int:
        return int(running.publisher.published)

    await eventually(published, lambda n: n == 1, timeout=60)
    assert await _by_key(kafka_bootstrap, topic) == {"key-s": ["kept"]}
    assert running.relay.swept == 0


async def test_events_staged_on_a_bare_connection_are_swept_at_their_commit_not_left_for_the_sweep_delay(
    engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, publishing: Callable[..., Any]
) -> None:
    """No publisher hears a bare connection's commit (the TON and Stellar drivers stage there): its transaction asks
    the relay to sweep, and the relay (whose own sweep delay here is an hour) publishes them at once — a rollback
    asks nothing."""
    topic = "prizeflow.publish-bare" + topic_suffix
    await ensure_topics(kafka_bootstrap, [topic], with_dlq=False)
    running = await publishing()
    with contextlib.suppress(RuntimeError):
        async with engine.begin() as conn:
            await add_events(conn, [thing("undone", correlation_id="key-b")], topic=topic)
            raise RuntimeError("rolled back")
    async with engine.begin() as conn:
        await add_events(
            conn, [thing("bare-1", correlation_id="key-b"), thing("bare-2", correlation_id="key-b")], topic=topic
        )
    await eventually(lambda: _outbox_rows(engine), lambda n: n == 0, timeout=60)
    assert _first_seen((await _by_key(kafka_bootstrap, topic))["key-b"]) == ["bare-1", "bare-2"]
    assert running.relay.swept >= 2
    assert running.publisher.published == 0
