"""ReliableConsumer paths that need no database: refusals go straight to the DLQ, offsets, backoff."""

from __future__ import annotations

from typing import Any

from aiokafka import ConsumerRecord, TopicPartition

from prizeflow_runtime.consumer import DLQ_ATTEMPTS, DLQ_REASON, ReliableConsumer, next_offsets
from prizeflow_runtime.settings import RetrySettings


class RecordingProducer:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        self.failures = failures

    async def send_and_wait(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.sent.append((topic, value, headers))


def record(
    value: bytes, offset: int, partition: int = 0, topic: str = "prizeflow.t.v1"
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic, partition, offset, 0, 0, b"k", value, None, len(value), len(b"k"), [])


def consumer(producer: Any, sleeps: list[float]) -> ReliableConsumer:
    async def no_handler(*_: Any) -> None:
        raise AssertionError("refused events never reach the handler")

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return ReliableConsumer(
        name="unit",
        topics=["prizeflow.t.v1"],
        session_factory=None,  # type: ignore[arg-type]
        producer=producer,
        handler=no_handler,
        retry=RetrySettings(max_attempts=4, backoff_initial_ms=100, backoff_max_ms=250),
        sleep=sleep,
    )


async def test_undecodable_records_are_dead_lettered_with_their_reason_and_their_offsets_committed() -> None:
    producer = RecordingProducer()
    c = consumer(producer, [])
    offsets = await c.process([record(b"{oops", 7), record(b'{"type": "prizeflow.x.Nope.v1"}', 8)])
    assert [(topic, dict(h)[DLQ_REASON]) for topic, _, h in producer.sent] == [
        ("prizeflow.t.v1.dlq", b"malformed_json"),
        ("prizeflow.t.v1.dlq", b"unknown_event_type"),
    ]
    assert all(dict(h)[DLQ_ATTEMPTS] == b"0" for _, _, h in producer.sent)
    assert offsets == {TopicPartition("prizeflow.t.v1", 0): 9}


async def test_the_partition_waits_until_the_dlq_write_succeeds() -> None:
    producer = RecordingProducer(failures=3)
    sleeps: list[float] = []
    await consumer(producer, sleeps).process([record(b"nope", 0)])
    assert len(producer.sent) == 1
    assert sleeps == [0.2, 0.4, 0.8]


def test_next_offsets_is_one_past_the_highest_offset_per_partition() -> None:
    records = [record(b"", 5, 0), record(b"", 3, 1), record(b"", 9, 0), record(b"", 4, 1)]
    assert next_offsets(records) == {
        TopicPartition("prizeflow.t.v1", 0): 10,
        TopicPartition("prizeflow.t.v1", 1): 5,
    }


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    c = consumer(RecordingProducer(), [])
    for attempt, cap in ((1, 0.1), (2, 0.2), (3, 0.25), (9, 0.25)):
        delays = {c._backoff(attempt) for _ in range(50)}
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(delays) > 1


def test_database_outages_are_told_apart_from_handler_bugs() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from prizeflow_runtime.consumer import is_infrastructure_outage

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

    c = consumer(RecordingProducer(), [])
    c.lanes = 2
    sizes = {0: 5, 1: 4, 2: 3, 3: 2, 4: 1}
    items = [_Item(record(b"{}", offset, partition=p)) for p, n in sizes.items() for offset in range(n)]
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
