"""ReliableConsumer paths that need no database: refusals are recorded with their reason, offsets, backoff, a
poll that lost a deadlock applied again whole."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.dead_letters import DeadLetter
from prizeflow_runtime.records import next_offsets
from prizeflow_runtime.settings import RetrySettings


class FakeSession:
    @asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield


class FakeSessions:
    """Stands in for an async_sessionmaker: `async with sessions() as s, s.begin():`."""

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeSession]:
        yield FakeSession()


class RecordingDeadLetters:
    """Remembers refusals by (consumer, digest) as the SQL store does; can fail a few times first."""

    def __init__(self, failures: int = 0) -> None:
        self.recorded: list[tuple[DeadLetter, str]] = []
        self.failures = failures

    async def record(self, session: Any, letter: DeadLetter, *, dlq_topic: str) -> int | None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database away")
        if any(known.digest == letter.digest for known, _ in self.recorded):
            return None
        self.recorded.append((letter, dlq_topic))
        return len(self.recorded)


def record(
    value: bytes, offset: int, partition: int = 0, topic: str = "prizeflow.t.v1"
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", value, None, len(value), len(b"k"), [])


def consumer(store: RecordingDeadLetters, sleeps: list[float], *, topic_suffix: str = "") -> ReliableConsumer:
    async def no_handler(*_: Any) -> None:
        raise AssertionError("refused events never reach the handler")

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return ReliableConsumer(
        name="unit",
        topics=["prizeflow.t.v1" + topic_suffix],
        session_factory=FakeSessions(),  # type: ignore[arg-type]
        handler=no_handler,
        retry=RetrySettings(max_attempts=4, backoff_initial_ms=100, backoff_max_ms=250),
        sleep=sleep,
        topic_suffix=topic_suffix,
        dead_letters=store,
    )


async def test_undecodable_records_are_dead_lettered_with_their_reason_and_their_offsets_committed() -> None:
    store = RecordingDeadLetters()
    c = consumer(store, [])
    offsets = await c.process([record(b"{oops", 7), record(b'{"type": "prizeflow.x.Nope.v1"}', 8)])
    assert [(letter.reason, letter.attempts, topic) for letter, topic in store.recorded] == [
        ("malformed_json", 0, "prizeflow.t.v1.dlq"),
        ("unknown_event_type", 0, "prizeflow.t.v1.dlq"),
    ]
    assert [letter.offset for letter, _ in store.recorded] == [7, 8]
    assert offsets == {TopicPartition("prizeflow.t.v1", 0): 9}


async def test_a_replayed_refusal_is_recorded_once() -> None:
    store = RecordingDeadLetters()
    c = consumer(store, [])
    await c.process([record(b"{oops", 7)])
    await c.process([record(b"{oops", 7), record(b"{oops", 12)])  # a replay, and the same bytes again
    assert len(store.recorded) == 1


async def test_a_record_that_names_its_id_keeps_it_in_the_dead_letter() -> None:
    store = RecordingDeadLetters()
    body = b'{"id": "8c7e3c2e-2a39-4a59-9d53-9ad1b9f0f7a1", "type": "prizeflow.x.Nope.v1", "correlationid": "r-1"}'
    await consumer(store, []).process([record(body, 3)])
    ((letter, _),) = store.recorded
    assert str(letter.event_id) == "8c7e3c2e-2a39-4a59-9d53-9ad1b9f0f7a1"
    assert (letter.event_type, letter.correlation_id) == ("prizeflow.x.Nope.v1", "r-1")


async def test_dlq_copies_are_staged_under_the_contract_topic_name() -> None:
    store = RecordingDeadLetters()
    c = consumer(store, [], topic_suffix=".t-42")
    await c.process([record(b"nope", 0, topic="prizeflow.t.v1.t-42")])
    ((letter, topic),) = store.recorded
    assert topic == "prizeflow.t.v1.dlq"  # the relay appends the suffix, as for every staged event
    assert letter.topic == "prizeflow.t.v1.t-42"


async def test_the_partition_waits_until_the_refusal_is_recorded() -> None:
    store = RecordingDeadLetters(failures=3)
    sleeps: list[float] = []
    await consumer(store, sleeps).process([record(b"nope", 0)])
    assert len(store.recorded) == 1
    # doubling from 0.2 s, each wait jittered into the upper half of its ceiling (replicas spread apart)
    assert [ceiling / 2 <= slept <= ceiling for slept, ceiling in zip(sleeps, (0.2, 0.4, 0.8), strict=True)] == [
        True
    ] * 3


def test_next_offsets_is_one_past_the_highest_offset_per_partition() -> None:
    records = [record(b"", 5, 0), record(b"", 3, 1), record(b"", 9, 0), record(b"", 4, 1)]
    assert next_offsets(records) == {
        TopicPartition("prizeflow.t.v1", 0): 10,
        TopicPartition("prizeflow.t.v1", 1): 5,
    }


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    c = consumer(RecordingDeadLetters(), [])
    for attempt, cap in ((1, 0.1), (2, 0.2), (3, 0.25), (9, 0.25)):
        delays = {c._backoff(attempt) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1


def test_database_outages_are_told_apart_from_handler_bugs() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from prizeflow_runtime.outages import is_infrastructure_outage

    class AdminShutdown(Exception):
        sqlstate = "57P01"  # the server is restarting

    class UniqueViolation(Exception):
        sqlstate = "23505"

    wrapped = DBAPIError("SELECT 1", {}, AdminShutdown("terminating connection"))
    assert is_infrastructure_outage(ConnectionRefusedError(111, "refused"))
    assert is_infrastructure_outage(wrapped)
    chained = RuntimeError("handler gave up")
    chained.__cause__ = OSError(104, "connection reset")
    assert is_infrastructure_outage(chained)
    assert not is_infrastructure_outage(IntegrityError("INSERT", {}, UniqueViolation("duplicate key")))
    assert not is_infrastructure_outage(ValueError("bad amount"))
    assert not is_infrastructure_outage(KeyError("round"))


def test_lanes_deal_whole_partitions_and_keep_their_order() -> None:
    from prizeflow_runtime.consumer import _Item

    c = consumer(RecordingDeadLetters(), [])
    c.lanes = 2
    sizes = {0: 5, 1: 4, 2: 3, 3: 2, 4: 1}
    items = [_Item(record(b"{}", offset, partition=p), b"") for p, n in sizes.items() for offset in range(n)]
    lanes = c._deal(items)
    assert len(lanes) == 2
    placed: dict[int, int] = {}
    for n, lane in enumerate(lanes):
        for item in lane:
            assert placed.setdefault(item.record.partition, n) == n  # a partition lives in one lane
        for p in {i.record.partition for i in lane}:
            assert [i.record.offset for i in lane if i.record.partition == p] == list(range(sizes[p]))
    assert sorted(len(lane) for lane in lanes) == [7, 8]  # largest partitions first onto the lightest lane
    c.lanes = 1
    assert c._deal(items) == [items]


def test_a_lane_key_keeps_its_events_together_across_partitions_in_poll_order() -> None:
    """`lane_key` (payouts' requests: the player) deals by that key instead of the partition: one key's events in
    one lane whatever their partitions, in poll order; an event without an envelope goes by its partition."""
    from prizeflow_contracts.envelope import new_event
    from prizeflow_runtime.consumer import _Item
    from prizeflow_testkit.events import all_examples

    payload = all_examples()[0]
    c = consumer(RecordingDeadLetters(), [])
    c.lanes = 2
    c.lane_key = lambda env: env.correlationid.split("-")[1]  # the "player"
    items = [
        _Item(
            record(b"{}", n, partition=n % 3),
            b"",
            envelope=new_event(payload, source="/t", correlation_id=f"c-p{n % 4}-{n}"),
        )
        for n in range(24)
    ]
    lanes = c._deal(items)
    assert len(lanes) == 2
    lane_of: dict[str, int] = {}
    for n, lane in enumerate(lanes):
        for item in lane:
            assert item.envelope is not None
            assert lane_of.setdefault(item.envelope.correlationid.split("-")[1], n) == n  # a player in one lane
        for player in {i.envelope.correlationid.split("-")[1] for i in lane if i.envelope is not None}:
            mine = [i.record.offset for i in lane if i.envelope and i.envelope.correlationid.split("-")[1] == player]
            assert mine == sorted(mine)  # poll order within a key
    assert sorted(len(lane) for lane in lanes) == [12, 12]


def test_a_dlq_copy_goes_to_the_physical_topics_own_dlq() -> None:
    from prizeflow_runtime.dead_letters import dlq_topic_for
    from prizeflow_runtime.outbox import physical_topic

    staged = dlq_topic_for("prizeflow.t.v1.e2e42", ".e2e42")
    assert staged == "prizeflow.t.v1.dlq"
    assert physical_topic(staged, ".e2e42") == "prizeflow.t.v1.e2e42.dlq"  # what ensure_topics created
    assert physical_topic("prizeflow.t.v1", ".e2e42") == "prizeflow.t.v1.e2e42"
    assert physical_topic("prizeflow.t.v1.dlq", "") == "prizeflow.t.v1.dlq"


class Deadlock(Exception):
    sqlstate = "40P01"  # what asyncpg's DeadlockDetectedError carries


def poll_of(n: int) -> list[ConsumerRecord[bytes, bytes]]:
    from prizeflow_contracts.envelope import new_event
    from prizeflow_testkit.events import all_examples

    payload = all_examples()[0]
    return [record(new_event(payload, source="/t", correlation_id=f"c-{i}").encode(), i) for i in range(n)]


def batch_consumer(
    sleeps: list[float], fails: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[ReliableConsumer, list[int]]:
    """A consumer whose transaction (`_apply`) is replaced: it records the size of each attempt, and raises
    `fails(size)` when that returns an exception."""
    c = consumer(RecordingDeadLetters(), sleeps)
    sizes: list[int] = []

    async def apply(items: Sequence[Any]) -> int:
        sizes.append(len(items))
        err = fails(len(items))
        if err is not None:
            raise err
        return len(items)

    monkeypatch.setattr(c, "_apply", apply)
    return c, sizes


async def test_a_poll_that_loses_a_deadlock_is_applied_again_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    failures = [Deadlock("deadlock detected"), Deadlock("deadlock detected")]
    c, sizes = batch_consumer(sleeps, lambda _: failures.pop(0) if failures else None, monkeypatch)
    offsets = await c.process(poll_of(3))
    assert sizes == [3, 3, 3]  # the whole poll twice more, never split
    assert len(sleeps) == 2
    assert all(0 < s <= 0.25 for s in sleeps)
    assert offsets == {TopicPartition("prizeflow.t.v1", 0): 3}


async def test_a_poll_that_keeps_deadlocking_is_split_after_its_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    c, sizes = batch_consumer([], lambda n: Deadlock("deadlock detected") if n > 1 else None, monkeypatch)
    await c.process(poll_of(2))
    assert sizes == [2, 2, 2, 1, 1]  # one attempt and `batch_conflict_retries` more, then record by record


async def test_any_other_failure_splits_the_poll_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    c, sizes = batch_consumer([], lambda n: ValueError("a bug") if n > 1 else None, monkeypatch)
    await c.process(poll_of(2))
    assert sizes == [2, 1, 1]


def test_deadlocks_and_serialization_failures_are_told_apart_from_other_errors() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from prizeflow_runtime.outages import is_transient_conflict

    class SerializationFailure(Exception):
        pgcode = "40001"  # psycopg's spelling

    class UniqueViolation(Exception):
        sqlstate = "23505"

    class AdminShutdown(Exception):
        sqlstate = "57P01"

    assert is_transient_conflict(Deadlock("deadlock detected"))
    assert is_transient_conflict(DBAPIError("UPDATE", {}, Deadlock("deadlock detected")))
    assert is_transient_conflict(SerializationFailure("could not serialize access"))
    chained = RuntimeError("use case failed")
    chained.__cause__ = Deadlock("deadlock detected")
    assert is_transient_conflict(chained)
    assert not is_transient_conflict(IntegrityError("INSERT", {}, UniqueViolation("duplicate key")))
    assert not is_transient_conflict(DBAPIError("SELECT 1", {}, AdminShutdown("terminating connection")))
    assert not is_transient_conflict(ValueError("bad amount"))


async def test_only_a_known_type_the_handler_does_not_act_on_is_skipped_unread() -> None:
    """`acts_on`: a record whose header names a type this code knows and the handler ignores is never decoded (its
    bad body is not even refused); a newer version this code does not know, a record without the header and one of
    an acted type are decoded and judged as before (refused here: their bodies are not events)."""
    import prizeflow_contracts.events  # noqa: F401 - every contract type known, as in a service

    store = RecordingDeadLetters()
    c = consumer(store, [])
    c.acts_on = frozenset({"prizeflow.payouts.PayoutPaid.v1"})

    def typed(value: bytes, offset: int, kind: str) -> ConsumerRecord[bytes, bytes]:
        r = record(value, offset)
        return ConsumerRecord(r.topic, 0, offset, 0, 0, b"k", value, None, len(value), 1, [("ce_type", kind.encode())])

    offsets = await c.process(
        [
            typed(b"{oops", 1, "prizeflow.payouts.PayoutSubmitted.v1"),  # known, ignored: skipped
            typed(b'{"type": "prizeflow.payouts.PayoutPaid.v9"}', 2, "prizeflow.payouts.PayoutPaid.v9"),  # newer
            record(b"{oops", 3),  # no header
            typed(b"{oops!", 4, "prizeflow.payouts.PayoutPaid.v1"),  # acted on
            ConsumerRecord("prizeflow.t.v1", 0, 5, 0, 0, b"k", b"{oops?", None, 6, 1, [("ce_type", None)]),  # null
        ]
    )
    assert [(letter.offset, letter.reason) for letter, _ in store.recorded] == [
        (2, "unknown_event_type"),
        (3, "malformed_json"),
        (4, "malformed_json"),
        (5, "malformed_json"),
    ]
    assert offsets == {TopicPartition("prizeflow.t.v1", 0): 6}


def test_a_known_type_an_upcaster_rewrites_is_never_skipped_unread() -> None:
    import prizeflow_contracts.events  # noqa: F401 - every contract type known, as in a service
    from prizeflow_contracts import envelope

    submitted = "prizeflow.payouts.PayoutSubmitted.v1"
    assert envelope.is_known_type(submitted)
    envelope.register_upcaster(submitted, lambda data: (submitted, data))
    try:
        assert not envelope.is_known_type(submitted)  # decoded, so the upcaster's answer is what is judged
    finally:
        envelope._UPCASTERS.pop(submitted)
