"""The dedup horizon's arithmetic (ADR 0008): which events may apply, which partitions go, which settings start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from pydantic import ValidationError

from prizeflow_contracts.envelope import EventPayload, new_event
from prizeflow_contracts.topics import Topic
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.dead_letters import DeadLetter
from prizeflow_runtime.inbox import hour_of
from prizeflow_runtime.inbox_retention import (
    BEYOND_CLOCK_SKEW,
    BEYOND_DEDUP_HORIZON,
    DROP_GRACE,
    InboxRetention,
    horizon_problems,
)
from prizeflow_runtime.settings import DAY_MS, InboxSettings

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
RETENTION = InboxRetention(horizon=timedelta(days=10), max_skew=timedelta(minutes=10))


def reason(occurred_at: datetime) -> str | None:
    refusal = RETENTION.refusal(occurred_at, NOW)
    return None if refusal is None else refusal.reason


def test_events_inside_the_horizon_and_the_skew_apply_the_others_are_refused() -> None:
    assert reason(NOW - timedelta(days=10)) is None  # the horizon's edge is inside
    assert reason(NOW - timedelta(days=10, microseconds=1)) == BEYOND_DEDUP_HORIZON
    assert reason(NOW + timedelta(minutes=10)) is None
    assert reason(NOW + timedelta(minutes=10, microseconds=1)) == BEYOND_CLOCK_SKEW
    refusal = RETENTION.refusal(NOW - timedelta(days=11), NOW)
    assert refusal is not None
    assert "INBOX_DEDUP_HORIZON_DAYS=10" in refusal.detail


def test_a_partition_that_may_hold_an_accepted_event_is_never_dropped() -> None:
    """The oldest event still accepted is keyed by its hour; its partition ends after it, so after keep_from."""
    oldest_accepted = NOW - RETENTION.horizon
    assert hour_of(oldest_accepted) >= RETENTION.keep_from(NOW) + (DROP_GRACE - timedelta(hours=1))
    assert RETENTION.keep_from(NOW) < hour_of(oldest_accepted)
    assert RETENTION.cover_until(NOW) >= NOW + RETENTION.max_skew + RETENTION.partition_width


def test_the_inbox_key_is_the_utc_hour_whatever_the_offset() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2026, 11, 23, 18, 15, 42, tzinfo=india)  # 12:45:42 UTC
    assert hour_of(at) == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert hour_of(at) == hour_of(at.astimezone(UTC))


def test_a_horizon_covering_retention_plus_replay_starts() -> None:
    settings = InboxSettings(dedup_horizon_days=10, max_replay_days=2)
    assert horizon_problems({"a": 7 * DAY_MS, "b": 8 * DAY_MS}, settings) == []


def test_a_topic_outliving_the_horizon_is_named_with_the_setting() -> None:
    settings = InboxSettings(dedup_horizon_days=10, max_replay_days=2)
    (problem,) = horizon_problems({"ok": 7 * DAY_MS, "long": 8 * DAY_MS + 1}, settings)
    assert problem.startswith("topic long ")
    assert "INBOX_DEDUP_HORIZON_DAYS (10)" in problem
    assert "INBOX_MAX_REPLAY_DAYS (2)" in problem
    assert "at least 10.01" in problem


def test_infinite_retention_is_refused_unless_acknowledged() -> None:
    (problem,) = horizon_problems({"forever": -1}, InboxSettings())
    assert "INBOX_ACCEPT_INFINITE_RETENTION" in problem
    assert horizon_problems({"forever": -1}, InboxSettings(accept_infinite_retention=True)) == []


def test_settings_refuse_a_partition_wider_than_the_horizon_or_a_horizon_under_a_day() -> None:
    with pytest.raises(ValidationError, match="INBOX_PARTITION_HOURS"):
        InboxSettings(dedup_horizon_days=1, partition_hours=48)
    with pytest.raises(ValidationError):
        InboxSettings(dedup_horizon_days=0.5)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_DEDUP_HORIZON_DAYS", "14")
    monkeypatch.setenv("INBOX_PARTITION_HOURS", "6")
    settings = InboxSettings()
    retention = InboxRetention.from_settings(settings)
    assert (retention.horizon, retention.partition_width) == (timedelta(days=14), timedelta(hours=6))


class Ping(EventPayload):
    EVENT_NAME: ClassVar[str] = "Ping"
    TOPIC: ClassVar[Topic] = Topic("prizeflow.retentionunit.pings.v1", "tests", ("Ping",))


class Letters:
    def __init__(self) -> None:
        self.recorded: list[DeadLetter] = []

    async def record(self, session: Any, letter: DeadLetter, *, dlq_topic: str) -> int | None:
        self.recorded.append(letter)
        return len(self.recorded)


class Session:
    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield


class Sessions:
    """Only the dead-letter store's transactions are opened (it records without SQL here)."""

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Session]:
        yield Session()


def ping_record(occurred_at: datetime, offset: int) -> ConsumerRecord[bytes, bytes]:
    value = new_event(Ping(), source="/t", correlation_id="c", time=occurred_at).encode()
    return ConsumerRecord("prizeflow.retentionunit.pings.v1", 0, offset, 0, 0, b"c", value, None, len(value), 1, [])


async def test_events_outside_the_horizon_are_dead_lettered_without_an_inbox_time() -> None:
    async def handler(*_: Any) -> None:
        raise AssertionError("never applied")

    letters = Letters()
    c = ReliableConsumer(
        name="unit",
        topics=["prizeflow.retentionunit.pings.v1"],
        session_factory=Sessions(),  # type: ignore[arg-type]
        handler=handler,
        dead_letters=letters,
        retention=RETENTION,
        clock=lambda: NOW,
    )
    offsets = await c.process([ping_record(NOW - timedelta(days=11), 4), ping_record(NOW + timedelta(hours=1), 5)])
    assert [(letter.reason, letter.attempts, letter.occurred_at) for letter in letters.recorded] == [
        (BEYOND_DEDUP_HORIZON, 0, None),  # its partition may be gone: the inbox does not claim it
        (BEYOND_CLOCK_SKEW, 0, None),
    ]
    assert offsets == {TopicPartition("prizeflow.retentionunit.pings.v1", 0): 6}


async def test_an_unreadable_record_keeps_its_readable_time_for_the_inbox() -> None:
    letters = Letters()

    async def handler(*_: Any) -> None:
        raise AssertionError("never applied")

    c = ReliableConsumer(
        name="unit",
        topics=["t"],
        session_factory=Sessions(),  # type: ignore[arg-type]
        handler=handler,
        dead_letters=letters,
        retention=RETENTION,
        clock=lambda: NOW,
    )
    body = b'{"id": "8c7e3c2e-2a39-4a59-9d53-9ad1b9f0f7a1", "type": "prizeflow.x.Nope.v1", "time": "%s"}'
    inside, outside = (body % t.isoformat().encode() for t in (NOW, NOW - timedelta(days=30)))
    await c.process([ConsumerRecord("t", 0, 0, 0, 0, b"", inside, None, 1, 0, [])])
    await c.process([ConsumerRecord("t", 0, 1, 0, 0, b"", outside, None, 1, 0, [])])
    assert [letter.occurred_at for letter in letters.recorded] == [NOW, None]
