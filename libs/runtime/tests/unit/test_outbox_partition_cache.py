"""The relay's partition memo: the producer's choice for every key, within a fixed memory bound.

The soak found the old memo (200,000 keys, cleared when full) holding ~47 MB per service: RSS rose ~57 MB/h.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from prizeflow_runtime import outbox
from prizeflow_runtime.outbox import OutboxRelay

TOPIC = "prizeflow.rewards.allocations.v1"


class _Cluster:
    def __init__(self, count: int) -> None:
        self.count = count

    def partitions_for_topic(self, _topic: str) -> set[int]:
        return set(range(self.count))


class _Producer:
    def __init__(self, count: int) -> None:
        self.client = type("Client", (), {"cluster": _Cluster(count)})()


def _relay(count: int) -> tuple[OutboxRelay, Any]:
    producer = _Producer(count)
    relay = OutboxRelay(database_url="postgresql+asyncpg://u@127.0.0.1:1/db", producer=producer)
    return relay, producer


def test_every_key_gets_the_producers_partition_and_the_memo_stays_bounded() -> None:
    relay, _ = _relay(12)
    ordered = list(range(12))
    partitioner = DefaultPartitioner()

    async def run() -> None:
        for _ in range(outbox._PARTITION_CACHE_SIZE * 3):
            key = str(uuid.uuid4()).encode()
            assert await relay._partition_for(TOPIC, key) == partitioner(key, ordered, ordered)
        assert len(relay._partitions) == outbox._PARTITION_CACHE_SIZE

    asyncio.run(run())


def test_a_recent_key_stays_remembered_and_a_grown_topic_is_recomputed() -> None:
    relay, producer = _relay(4)
    hot = b"correlation-of-a-live-flow"

    async def run() -> None:
        first = await relay._partition_for(TOPIC, hot)
        for _ in range(outbox._PARTITION_CACHE_SIZE - 1):
            await relay._partition_for(TOPIC, str(uuid.uuid4()).encode())
            await relay._partition_for(TOPIC, hot)  # used all along: never the one evicted
        assert (TOPIC, hot) in relay._partitions
        assert await relay._partition_for(TOPIC, hot) == first
        producer.client.cluster.count = 24
        ordered = list(range(24))
        assert await relay._partition_for(TOPIC, hot) == DefaultPartitioner()(hot, ordered, ordered)

    asyncio.run(run())
