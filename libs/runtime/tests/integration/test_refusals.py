"""Refusals are outcomes: a replay cannot apply what was refused, a reused id is refused, an operator redrives.

Real Kafka and PostgreSQL. The handler refuses while a gate is closed, the way settlement refuses results for
a round that is still open: opening the gate afterwards is "today's state" that a replay used to apply
the old event against.
"""

from __future__ import annotations

import pytest
from harness import outbox_drained, publish, rewind, running_consumer, running_relay
from sample import ThingHappened, apply_thing, thing, totals, unique
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.topics import AUDIT
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.dead_letters import DLQ_ID, DLQ_REASON, DeadLetterAdmin
from prizeflow_runtime.errors import UseCaseError
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import RetrySettings
from prizeflow_testkit import header, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

OPS = Principal("ops-7", frozenset({Role.OPS}))


@pytest.fixture
async def gate(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE gate (open boolean NOT NULL)"))
        await conn.execute(text("INSERT INTO gate VALUES (false)"))


async def set_gate(engine: AsyncEngine, *, open_: bool) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE gate SET open = :o"), {"o": open_})


async def gated(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
    if not await session.scalar(text("SELECT open FROM gate")):
        raise EventRefusal("illegal_transition", "the gate is closed")
    await apply_thing(session, envelope)


class Setup:
    def __init__(self, engine: AsyncEngine, kafka: str, suffix: str) -> None:
        self.engine = engine
        self.kafka = kafka
        self.suffix = suffix  # DLQ copies and audit events go to this test's own topics, deleted afterwards
        self.topic = "prizeflow.refusals" + suffix
        self.consumer = ReliableConsumer(
            name=unique("refusals"),
            topics=[self.topic],
            session_factory=session_factory(engine),
            handler=gated,
            retry=RetrySettings(max_attempts=2, backoff_initial_ms=10, backoff_max_ms=20),
            topic_suffix=suffix,
        )
        self.admin = DeadLetterAdmin(
            sessions=session_factory(engine),
            consumers=lambda: {self.consumer.name: self.consumer},
            service="tests",
            source="/prizeflow/tests",
        )

    async def publish(self, *raw: Envelope[ThingHappened] | bytes) -> None:
        producer = idempotent_producer(self.kafka)
        await producer.start()
        try:
            for item in raw:
                if isinstance(item, bytes):
                    await producer.send_and_wait(self.topic, item, key=b"k")
                else:
                    await publish(producer, self.topic, [item])
        finally:
            await producer.stop()

    async def consume(self, *, max_records: int = 100) -> None:
        """Run the consumer (and the relay) until the group has committed the topic's end."""
        async with (
            running_relay(self.kafka, self.engine, topic_suffix=self.suffix),
            running_consumer(self.kafka, self.consumer, max_records=max_records),
        ):
            await wait_caught_up(self.kafka, self.consumer.name, self.topic)
            await outbox_drained(self.engine)

    async def replay(self) -> None:
        await rewind(self.kafka, self.consumer.name, self.topic)
        await self.consume()

    async def dlq(self) -> list[tuple[str | None, str | None]]:
        return [(header(r, DLQ_REASON), header(r, DLQ_ID)) for r in await read_topic(self.kafka, self.topic + ".dlq")]

    async def letters(self) -> list[tuple[int, str, str]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, reason, status FROM dead_letters ORDER BY id"))
            return [(int(r.id), str(r.reason), str(r.status)) for r in rows]

    async def outcomes(self) -> list[str]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(text("SELECT outcome FROM inbox ORDER BY received_at"))).scalars())

    async def audit_actions(self) -> list[str]:
        records = await read_topic(self.kafka, AUDIT.name + self.suffix)
        return [
            decode(r.value).data.action  # type: ignore[attr-defined]
            for r in records
            if decode(r.value).data.service == "tests"  # type: ignore[attr-defined]
            and decode(r.value).data.target_id.startswith("tests-")  # type: ignore[attr-defined]
            and self.consumer.name in decode(r.value).data.before.get("consumer", "")  # type: ignore[attr-defined]
        ]


@pytest.fixture
async def s(engine: AsyncEngine, kafka_bootstrap: str, topic_suffix: str, gate: None) -> Setup:
    setup = Setup(engine, kafka_bootstrap, topic_suffix)
    await ensure_topics(kafka_bootstrap, [setup.topic, AUDIT.name + topic_suffix])
    return setup


async def test_a_refused_event_stays_refused_when_the_topic_is_replayed(s: Setup) -> None:
    await s.publish(thing("early", 5, correlation_id="k"))
    await s.consume()
    assert await totals(s.engine) == (0, 0)
    assert await s.outcomes() == ["refused"]
    assert [reason for reason, _ in await s.dlq()] == ["illegal_transition"]

    await set_gate(s.engine, open_=True)  # today's state would now accept it
    await s.replay()
    await s.replay()

    assert await totals(s.engine) == (0, 0), "a replay applied an event that was refused the first time"
    assert [reason for reason, _ in await s.dlq()] == ["illegal_transition"], "the replay added DLQ records"
    assert [(reason, status) for _, reason, status in await s.letters()] == [("illegal_transition", "open")]


async def test_an_unreadable_record_is_dead_lettered_once_however_often_it_is_replayed(s: Setup) -> None:
    await set_gate(s.engine, open_=True)
    await s.publish(b"{not json", thing("fine", 2, correlation_id="k"))
    await s.consume()
    await s.replay()
    assert [reason for reason, _ in await s.dlq()] == ["malformed_json"]
    assert [(reason, status) for _, reason, status in await s.letters()] == [("malformed_json", "open")]


async def test_an_event_id_reused_with_other_bytes_is_refused_not_absorbed(s: Setup) -> None:
    await set_gate(s.engine, open_=True)
    first = thing("paid", 5, correlation_id="k")
    other = new_event(
        ThingHappened(thing_id="paid", amount=500),
        source="/prizeflow/tests",
        correlation_id="k",
        event_id=first.id,
    )
    same_poll = thing("twice", 1, correlation_id="k")
    same_poll_other = new_event(
        ThingHappened(thing_id="twice", amount=100),
        source="/prizeflow/tests",
        correlation_id="k",
        event_id=same_poll.id,
    )
    await s.publish(first)
    await s.consume()
    # A second poll: the reused id meets the inbox row; and a pair inside one poll.
    await s.publish(other, first, same_poll, same_poll_other)
    await s.consume(max_records=500)
    await s.replay()

    assert await totals(s.engine) == (6, 2)
    assert [reason for reason, _ in await s.dlq()] == ["event_id_reused", "event_id_reused"]
    letters = await s.letters()
    assert [(reason, status) for _, reason, status in letters] == [("event_id_reused", "open")] * 2
    with pytest.raises(UseCaseError) as refused:
        await s.admin.redrive(letters[0][0], actor=OPS, reason="try it", correlation_id="ops-1")
    assert refused.value.code == "not_redrivable"


async def test_redrive_applies_the_refused_event_once_with_an_audit_record(s: Setup) -> None:
    await s.publish(thing("early", 5, correlation_id="k"))
    await s.consume()
    ((letter_id, _, _),) = await s.letters()

    with pytest.raises(UseCaseError) as still:  # the gate is still closed: refused again, nothing changes
        await s.admin.redrive(letter_id, actor=OPS, reason="results arrived before close", correlation_id="ops-1")
    assert still.value.code == "still_refused"
    assert await s.outcomes() == ["refused"]
    assert [status for _, _, status in await s.letters()] == ["open"]

    await set_gate(s.engine, open_=True)
    done = await s.admin.redrive(letter_id, actor=OPS, reason="results arrived before close", correlation_id="ops-1")
    assert done["status"] == "redriven"
    assert await totals(s.engine) == (5, 1)
    assert await s.outcomes() == ["applied"]
    with pytest.raises(UseCaseError) as again:
        await s.admin.redrive(letter_id, actor=OPS, reason="twice", correlation_id="ops-1")
    assert again.value.code == "not_open"

    await s.replay()  # the relay publishes the audit; a replay changes nothing
    assert await totals(s.engine) == (5, 1)
    assert await s.audit_actions() == ["dead_letter.redrive"]
    detail = await s.admin.get(letter_id)
    assert (detail["status"], detail["decided_by"]) == ("redriven", "ops-7")


async def test_discard_closes_the_letter_and_the_event_stays_refused(s: Setup) -> None:
    await s.publish(thing("unwanted", 9, correlation_id="k"))
    await s.consume()
    ((letter_id, _, _),) = await s.letters()
    await s.admin.discard(letter_id, actor=OPS, reason="the game server sent it by mistake", correlation_id="ops-2")
    await set_gate(s.engine, open_=True)
    await s.replay()
    assert await totals(s.engine) == (0, 0)
    assert [status for _, _, status in await s.letters()] == ["discarded"]
    assert await s.audit_actions() == ["dead_letter.discard"]
