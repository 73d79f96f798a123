"""Adversarial review of ADR 0008 (issue 20): dead letters and dropped inbox partitions.

- A letter is redrivable only within the dedup horizon of its event's own time (the stated limit).
- An event whose inbox partition was dropped is refused as forgotten whatever language PostgreSQL's messages are in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from aiokafka import ConsumerRecord

from prizeflow_contracts.envelope import Envelope, EventPayload, decode, new_event
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.topics import Topic
from prizeflow_runtime import consumer as consumer_module
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.dead_letters import DeadLetter
from prizeflow_runtime.inbox import Claimed, Delivery
from prizeflow_runtime.inbox_retention import BEYOND_DEDUP_HORIZON, InboxRetention
from prizeflow_runtime.settings import RetrySettings

TOPIC = "prizeflow.adversarialunit.requests.v1"
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
RETENTION = InboxRetention(horizon=timedelta(days=10), max_skew=timedelta(minutes=10))


class Requested(EventPayload):
    EVENT_NAME: ClassVar[str] = "Requested"
    TOPIC: ClassVar[Topic] = Topic(TOPIC, "tests", ("Requested",))


class Session:
    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield


class Sessions:
    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Session]:
        yield Session()


class Letters:
    def __init__(self) -> None:
        self.recorded: list[DeadLetter] = []

    async def record(self, session: Any, letter: DeadLetter, *, dlq_topic: str) -> int | None:
        self.recorded.append(letter)
        return len(self.recorded)


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def _claims_everything(_session: Any, _consumer: str, deliveries: Sequence[Delivery], **_: Any) -> Claimed:
    """The inbox as it is for an event it never applied: every claim is fresh."""
    return Claimed({d.event_id for d in deliveries})


@pytest.fixture
def fresh_inbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer_module, "claim_many", _claims_everything)


def _consumer(clock: Clock, letters: Letters, applied: list[uuid.UUID], *, failing: list[bool]) -> ReliableConsumer:
    async def handler(_session: Any, envelope: Envelope[EventPayload]) -> None:
        if failing[0]:
            raise RuntimeError("payouts has no route for it yet (a bug, fixed in the next release)")
        applied.append(envelope.id)

    async def no_sleep(_: float) -> None:
        return None

    return ReliableConsumer(
        name="adversarial",
        topics=[TOPIC],
        session_factory=Sessions(),  # type: ignore[arg-type]
        handler=handler,
        dead_letters=letters,
        retry=RetrySettings(max_attempts=2, backoff_initial_ms=0, backoff_max_ms=0),
        sleep=no_sleep,
        retention=RETENTION,
        clock=clock,
    )


@pytest.mark.usefixtures("fresh_inbox")
async def test_a_letter_is_redrivable_only_within_the_horizon_of_its_events_time() -> None:
    """The stated limit (ADR 0008, "Known limits"): past the horizon a redrive is refused (`beyond_dedup_horizon`),
    whenever the letter was recorded; the operator's deadline is the event's time + INBOX_DEDUP_HORIZON_DAYS."""
    clock, letters, applied = Clock(NOW), Letters(), list[uuid.UUID]()
    c = _consumer(clock, letters, applied, failing=[False])
    value = new_event(Requested(), source="/t", correlation_id="c", time=NOW - timedelta(days=9, hours=23)).encode()
    envelope = decode(value)
    clock.at = NOW + timedelta(hours=2)
    with pytest.raises(EventRefusal) as refused:
        await c.apply_redrive(
            Session(),  # type: ignore[arg-type]
            envelope,
            Delivery(envelope.id, TOPIC, 0, 1, envelope.time, b"d"),
        )
    assert refused.value.reason == BEYOND_DEDUP_HORIZON
    assert applied == []


class _PgError(Exception):
    """asyncpg's error as SQLAlchemy wraps it: a SQLSTATE and the server's (localised) message."""

    sqlstate = "23514"


class ForgettingSession(Session):
    """The forgotten mark is after the event's hour (its partition was dropped, then the horizon raised)."""

    def __init__(self, dropped_before: datetime) -> None:
        self.dropped_before = dropped_before

    async def scalar(self, *_: Any) -> datetime:
        return self.dropped_before


class ForgettingSessions:
    def __init__(self, dropped_before: datetime) -> None:
        self.dropped_before = dropped_before

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[ForgettingSession]:
        yield ForgettingSession(self.dropped_before)


@pytest.mark.parametrize(
    "message",
    [
        'no partition of relation "inbox" found for row',
        "keine Partition von Relation »inbox« für Zeile gefunden",
    ],
)
async def test_a_forgotten_event_is_refused_whatever_the_servers_lc_messages(
    monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    """With lc_messages=de_DE PostgreSQL says "keine Partition von Relation »inbox« für Zeile gefunden": told by
    the SQLSTATE alone, the event is refused as forgotten, not retried into a `handler_failed` letter whose own
    inbox row would hit the same missing partition for ever."""
    from sqlalchemy.exc import DBAPIError

    occurred = NOW - timedelta(days=12)  # inside a horizon raised to 20 days, in a partition dropped at 10

    async def no_partition(*_: Any, **__: Any) -> Claimed:
        raise DBAPIError("INSERT INTO inbox ...", {}, _PgError(message))

    monkeypatch.setattr(consumer_module, "claim_many", no_partition)
    letters = Letters()

    async def handler(*_: Any) -> None:
        raise AssertionError("never applied")

    async def no_sleep(_: float) -> None:
        return None

    c = ReliableConsumer(
        name="adversarial",
        topics=[TOPIC],
        session_factory=ForgettingSessions(NOW - timedelta(days=10)),  # type: ignore[arg-type]
        handler=handler,
        dead_letters=letters,
        retry=RetrySettings(max_attempts=2, backoff_initial_ms=0, backoff_max_ms=0),
        sleep=no_sleep,
        retention=InboxRetention(horizon=timedelta(days=20)),
        clock=lambda: NOW,
    )
    value = new_event(Requested(), source="/t", correlation_id="c", time=occurred).encode()
    await c.process([ConsumerRecord(TOPIC, 0, 1, 0, 0, b"c", value, None, len(value), 1, [])])
    (letter,) = letters.recorded
    assert (letter.reason, letter.occurred_at) == (BEYOND_DEDUP_HORIZON, None)
