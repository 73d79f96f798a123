"""The sampled gauges the alert rules read: consumer lag arithmetic, sampling that survives a failing part, and the
series a consumer exports from start-up."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from prizeflow_contracts.errors import REFUSAL_REASONS
from prizeflow_runtime.gauges import LagSource, RuntimeGauges, consumer_lag
from prizeflow_runtime.metrics import RuntimeMetrics

ROUNDS, PAYOUTS = "prizeflow.settlement.rounds.v1", "prizeflow.payouts.events.v1"


class FakeMember:
    """A consumer group member: its assignment, the log's bounds, the group's committed offsets."""

    def __init__(
        self,
        assigned: Iterable[TopicPartition],
        *,
        ends: dict[TopicPartition, int],
        committed: dict[TopicPartition, int],
        starts: dict[TopicPartition, int] | None = None,
    ) -> None:
        self.assigned = set(assigned)
        self.ends = ends
        self.commits = committed
        self.starts = starts or {}
        self.asked_starts: list[TopicPartition] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.asked_starts.extend(partitions)
        return {tp: self.starts.get(tp, 0) for tp in partitions}

    async def committed(self, partition: TopicPartition) -> int | None:
        return self.commits.get(partition)


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


async def test_lag_is_end_minus_committed_summed_per_topic_of_the_partitions_assigned_here() -> None:
    member = FakeMember(
        [tp(ROUNDS, 0), tp(ROUNDS, 3), tp(PAYOUTS, 1)],
        ends={tp(ROUNDS, 0): 120, tp(ROUNDS, 3): 40, tp(PAYOUTS, 1): 7},
        committed={tp(ROUNDS, 0): 100, tp(ROUNDS, 3): 40, tp(PAYOUTS, 1): 7},
    )
    assert await consumer_lag(member, [ROUNDS, PAYOUTS]) == {ROUNDS: 20, PAYOUTS: 0}


async def test_a_partition_the_group_never_committed_lags_from_the_log_start() -> None:
    member = FakeMember(
        [tp(ROUNDS, 0), tp(ROUNDS, 1)],
        ends={tp(ROUNDS, 0): 50, tp(ROUNDS, 1): 30},
        committed={tp(ROUNDS, 0): 45},
        starts={tp(ROUNDS, 1): 10},  # retention deleted the first 10 records
    )
    assert await consumer_lag(member, [ROUNDS]) == {ROUNDS: 5 + 20}
    assert member.asked_starts == [tp(ROUNDS, 1)]  # only where nothing was committed


async def test_topics_assigned_elsewhere_lag_zero_here_and_foreign_topics_are_no_label() -> None:
    member = FakeMember([tp("some.other.topic", 0)], ends={tp("some.other.topic", 0): 10**6}, committed={})
    assert await consumer_lag(member, [ROUNDS, PAYOUTS]) == {ROUNDS: 0, PAYOUTS: 0}


async def test_a_committed_offset_past_a_stale_end_offset_is_no_negative_lag() -> None:
    member = FakeMember([tp(ROUNDS, 0)], ends={tp(ROUNDS, 0): 10}, committed={tp(ROUNDS, 0): 12})
    assert await consumer_lag(member, [ROUNDS]) == {ROUNDS: 0}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"prizeflow_svc_{name}", labels)


def gauges(
    registry: CollectorRegistry,
    *,
    ready: bool | Exception = True,
    age: float | Exception = 0.0,
    member: FakeMember | Exception | None = None,
) -> RuntimeGauges:
    async def is_ready() -> bool:
        if isinstance(ready, Exception):
            raise ready
        return ready

    async def outbox_age() -> float:
        if isinstance(age, Exception):
            raise age
        return age

    def reader() -> FakeMember | None:
        if isinstance(member, Exception):
            raise member
        return member

    metrics = RuntimeMetrics.create("svc", registry)
    return RuntimeGauges(
        metrics,
        ready=is_ready,
        outbox_age=outbox_age,
        consumers=lambda: [LagSource("svc-rounds", (ROUNDS,), reader)],
    )


async def test_one_sample_sets_readiness_outbox_age_and_lag() -> None:
    registry = CollectorRegistry()
    member = FakeMember([tp(ROUNDS, 0)], ends={tp(ROUNDS, 0): 9}, committed={tp(ROUNDS, 0): 2})
    await gauges(registry, ready=True, age=42.5, member=member).sample()
    assert sample(registry, "ready") == 1
    assert sample(registry, "outbox_oldest_pending_age_seconds") == 42.5
    assert sample(registry, "consumer_lag_records", consumer="svc-rounds", topic=ROUNDS) == 7


async def test_a_consumer_not_subscribed_yet_lags_zero_and_not_ready_is_zero() -> None:
    registry = CollectorRegistry()
    await gauges(registry, ready=False, member=None).sample()
    assert sample(registry, "ready") == 0
    assert sample(registry, "consumer_lag_records", consumer="svc-rounds", topic=ROUNDS) == 0


async def test_a_failing_part_keeps_its_last_value_and_the_others_are_still_refreshed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    g = gauges(registry, ready=True, age=5.0)
    await g.sample()

    async def database_down() -> float:
        raise ConnectionRefusedError("database down")

    async def not_ready() -> bool:
        return False

    g._outbox_age = database_down  # the database goes down between two samples
    g._ready = not_ready
    await g.sample()
    await g.sample()
    assert sample(registry, "outbox_oldest_pending_age_seconds") == 5.0
    assert sample(registry, "ready") == 0
    assert [r.getMessage() for r in caplog.records].count("gauge sampling failed: outbox (ConnectionRefusedError)") == 1


def test_a_declared_consumer_exports_its_lag_outcomes_and_dead_letters_at_zero_from_start_up() -> None:
    registry = CollectorRegistry()
    RuntimeMetrics.create("svc", registry).declare_consumer("svc-rounds", [ROUNDS])
    assert sample(registry, "consumer_lag_records", consumer="svc-rounds", topic=ROUNDS) == 0
    for outcome in ("applied", "duplicate", "dead_lettered", "skipped"):
        assert sample(registry, "events_consumed_total", consumer="svc-rounds", topic=ROUNDS, outcome=outcome) == 0
    for reason in REFUSAL_REASONS:
        labels = {"consumer": "svc-rounds", "topic": ROUNDS, "reason": reason}
        assert sample(registry, "events_dead_lettered_total", **labels) == 0
    assert sample(registry, "ready") == 0  # not ready until a sample says so
    assert sample(registry, "outbox_relay_leader") == 0
