"""The bench's watcher of output events on real Kafka: from the end of a topic a long run has already filled, a key
done once its events arrived, whatever else the topic carries."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.rewards import RewardAllocated
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_contracts.topics import REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_testkit.bench import EventWatcher, bench_producer, send_all
from prizeflow_testkit.events import example_payload
from prizeflow_testkit.kafka import provision_test_topics

pytestmark = pytest.mark.integration


async def test_a_watcher_from_the_end_sees_only_what_is_published_after_it_started(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    await provision_test_topics(kafka_bootstrap, topic_suffix)
    topic = SETTLEMENT_ROUNDS.name + topic_suffix
    producer = bench_producer(kafka_bootstrap)
    await producer.start()
    watcher = EventWatcher(kafka_bootstrap, topic, RoundSettled, from_end=True)
    try:

        def settled(round_id: str) -> Envelope[Any]:
            return new_event(example_payload(RoundSettled, round_id=round_id), source="/t", correlation_id=round_id)

        await send_all(producer, topic, [settled(f"before-{i}") for i in range(3)])  # an earlier phase's
        await watcher.start()
        await send_all(producer, topic, [settled(f"after-{i}") for i in range(2)])
        await watcher.wait(["after-0", "after-1"], 30)
        assert set(watcher.done_at) == {"after-0", "after-1"}
        assert watcher.records == 2
    finally:
        await watcher.stop()
        await producer.stop()


async def test_a_round_is_done_at_its_last_allocation(kafka_bootstrap: str, topic_suffix: str) -> None:
    await provision_test_topics(kafka_bootstrap, topic_suffix)
    topic = REWARDS_EVENTS.name + topic_suffix
    producer = bench_producer(kafka_bootstrap)
    await producer.start()
    watcher = EventWatcher(kafka_bootstrap, topic, RewardAllocated, from_end=True, per_key=3)
    await watcher.start()
    try:

        def allocated(player: str) -> Envelope[Any]:
            payload = example_payload(RewardAllocated, round_id="r-1", player_id=player)
            return new_event(payload, source="/t", correlation_id="r-1")

        await send_all(producer, topic, [allocated("p1"), allocated("p2")])
        with pytest.raises(RuntimeError, match="1 of 1 never had"):
            await watcher.wait(["r-1"], 2)
        await send_all(producer, topic, [allocated("p3")])
        await watcher.wait(["r-1"], 30)
        assert watcher.done == 1
        assert watcher.done_at["r-1"] >= watcher.first_seen["r-1"]
    finally:
        await watcher.stop()
        await producer.stop()
