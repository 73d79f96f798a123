"""A failure anywhere in the poll pipeline never lets an offset pass an unprocessed record (real Kafka and
PostgreSQL). Faults are injected at each step a poll goes through; while one holds, the group's committed
offset stays at the failing record; once it clears, every record is applied exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import publish, running_consumer, running_relay
from sample import apply_thing, thing, totals, unique
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload
from prizeflow_runtime import broker as broker_module
from prizeflow_runtime import consumer as consumer_module
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import RetrySettings
from prizeflow_testkit import committed_offsets, eventually, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

FAST = RetrySettings(max_attempts=3, backoff_initial_ms=5, backoff_max_ms=10)


class Fault:
    """Raises at one step while armed, for the record carrying `thing_id`; counts how often it fired."""

    def __init__(self) -> None:
        self.armed = True
        self.fired = 0

    def hit(self) -> None:
        if self.armed:
            self.fired += 1
            raise RuntimeError("injected fault")


def _value_names(records: Any) -> list[str]:
    return [bytes(r.value or b"").decode(errors="replace") for r in records]


@pytest.fixture
def fault() -> Fault:
    return Fault()


STEPS: dict[str, Callable[[pytest.MonkeyPatch, Fault], None]] = {}


def step(
    name: str,
) -> Callable[[Callable[[pytest.MonkeyPatch, Fault], None]], Callable[[pytest.MonkeyPatch, Fault], None]]:
    def register(inject: Callable[[pytest.MonkeyPatch, Fault], None]) -> Callable[[pytest.MonkeyPatch, Fault], None]:
        STEPS[name] = inject
        return inject

    return register


@step("decode")  # e.g. an upcaster that raises on one record
def _decode(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    real = consumer_module.decode  # type: ignore[attr-defined]

    def decode(raw: bytes | str) -> Envelope[EventPayload]:
        if b'"poisoned-' in (raw if isinstance(raw, bytes) else raw.encode()):
            fault.hit()
        return real(raw)

    monkeypatch.setattr(consumer_module, "decode", decode)


@step("fold")  # the duplicate fold of a poll
def _fold(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    real = ReliableConsumer._first_occurrences

    def fold(self: ReliableConsumer, items: Any) -> Any:
        if any("poisoned-" in _value_names([i.record])[0] for i in items):
            fault.hit()
        return real(self, items)

    monkeypatch.setattr(ReliableConsumer, "_first_occurrences", fold)


@step("process")  # anything else raised out of the poll's processing
def _process(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    real = ReliableConsumer.process

    async def process(self: ReliableConsumer, records: Any) -> Any:
        if any("poisoned-" in v for v in _value_names(records)):
            fault.hit()
        return await real(self, records)

    monkeypatch.setattr(ReliableConsumer, "process", process)


@step("offset_commit")  # the commit itself fails (the records were applied: redelivered, deduped)
def _commit(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    real = broker_module.commit_offsets

    async def commit(kafka_consumer: Any, offsets: Any) -> None:
        fault.hit()
        await real(kafka_consumer, offsets)

    monkeypatch.setattr(broker_module, "commit_offsets", commit)


@pytest.mark.parametrize("where", sorted(STEPS))
async def test_a_failure_at_any_step_never_moves_the_offset_past_an_unprocessed_record(
    where: str, engine: AsyncEngine, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, fault: Fault
) -> None:
    topic = unique("prizeflow.pipeline")
    await ensure_topics(kafka_bootstrap, [topic])
    events = [thing(f"{'poisoned' if i == 5 else 'fine'}-{i}", 1, correlation_id="one-key") for i in range(10)]
    STEPS[where](monkeypatch, fault)
    consumer = ReliableConsumer(
        name=unique("pipeline"),
        topics=[topic],
        session_factory=session_factory(engine),
        handler=apply_thing,
        retry=FAST,
    )
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        await publish(producer, topic, events)
    finally:
        await producer.stop()
    partition = (await read_topic(kafka_bootstrap, topic))[0].partition
    async with running_relay(kafka_bootstrap, engine), running_consumer(kafka_bootstrap, consumer, max_records=1):
        # Wait until the fault has fired again and again (the partition retries the same record), or until the
        # group's offset passed it (the failure this guards against), then look.
        async def state() -> tuple[int, int]:
            offsets = await committed_offsets(kafka_bootstrap, consumer.name, topic)
            return fault.fired, offsets.get(partition, 0)

        await eventually(state, lambda s: s[0] >= 3 or s[1] > 5, timeout=60)
        committed = (await committed_offsets(kafka_bootstrap, consumer.name, topic)).get(partition, 0)
        applied, _ = await totals(engine)
        if where == "offset_commit":
            # Nothing can be committed: the first record, applied, is fetched again and again (deduped).
            assert (committed, applied) == (0, 1)
        else:
            assert committed <= 5, f"the offset moved past the failing record at 5: {committed}"
            assert applied == 5  # everything before it, nothing after it
        fault.armed = False
        await wait_caught_up(kafka_bootstrap, consumer.name, topic)
    assert await totals(engine) == (10, 10)  # each applied once, none skipped
    assert await read_topic(kafka_bootstrap, topic + ".dlq") == []


async def test_a_handler_that_keeps_timing_out_while_the_database_answers_is_dead_lettered(
    engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    """TimeoutError looks like an outage; the probe shows PostgreSQL answering, so attempts are spent."""
    topic = unique("prizeflow.timeouts")
    await ensure_topics(kafka_bootstrap, [topic])
    calls: list[str] = []

    async def handler(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
        calls.append(envelope.data.thing_id)  # type: ignore[attr-defined]
        if envelope.data.thing_id == "slow":  # type: ignore[attr-defined]
            raise TimeoutError("the downstream call timed out")
        await apply_thing(session, envelope)

    consumer = ReliableConsumer(
        name=unique("timeouts"), topics=[topic], session_factory=session_factory(engine), handler=handler, retry=FAST
    )
    producer = idempotent_producer(kafka_bootstrap)
    await producer.start()
    try:
        await publish(producer, topic, [thing("slow", 1, correlation_id="k"), thing("after", 2, correlation_id="k")])
    finally:
        await producer.stop()
    async with running_relay(kafka_bootstrap, engine), running_consumer(kafka_bootstrap, consumer, max_records=1):
        await wait_caught_up(kafka_bootstrap, consumer.name, topic)
        dead = await eventually(
            lambda: read_topic(kafka_bootstrap, topic + ".dlq"), lambda records: len(records) == 1, timeout=30
        )
    assert calls.count("slow") == FAST.max_attempts
    assert await totals(engine) == (2, 1)
    assert dict(dead[0].headers or [])["x-dlq-reason"] == b"handler_failed"
