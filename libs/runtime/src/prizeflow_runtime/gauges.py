"""Gauges no event updates: readiness, the outbox's oldest pending row, consumer lag in records.

`RuntimeGauges` samples them every `interval_s` in the background, each part on its own: a failing part (the
database down, a rebalance) keeps its last value and logs, the others go on. What the alert rules read from them:
`*_ready` (service not ready), `*_outbox_oldest_pending_age_seconds` (outbox backlog age; with
`*_outbox_relay_leader`, set by the relay itself, "nobody relays"), `*_consumer_lag_records` (lag growing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from aiokafka import TopicPartition

from prizeflow_runtime.metrics import RuntimeMetrics

log = logging.getLogger(__name__)


class LagReader(Protocol):
    """What lag sampling needs of a group member (`AIOKafkaConsumer` has it)."""

    def assignment(self) -> set[TopicPartition]: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def committed(self, partition: TopicPartition) -> int | None: ...


async def consumer_lag(reader: LagReader, topics: Collection[str]) -> dict[str, int]:
    """Records per topic of `topics` that the partitions assigned to this member hold beyond the group's committed
    offset (from the log start where the group never committed). A topic with nothing assigned here lags 0: the
    member it is assigned to reports it, so the group's lag is the sum over members."""
    lag = dict.fromkeys(topics, 0)
    assigned = sorted((tp for tp in reader.assignment() if tp.topic in lag), key=lambda tp: (tp.topic, tp.partition))
    if not assigned:
        return lag
    ends = await reader.end_offsets(assigned)
    committed = dict(zip(assigned, await asyncio.gather(*(reader.committed(tp) for tp in assigned)), strict=True))
    never = [tp for tp, offset in committed.items() if offset is None]
    starts = await reader.beginning_offsets(never) if never else {}
    for tp in assigned:
        offset = committed[tp]
        base = offset if offset is not None else starts.get(tp, 0)
        lag[tp.topic] += max(0, ends.get(tp, base) - base)
    return lag


@dataclass(frozen=True)
class LagSource:
    """One consumer group member: its name (the metric's `consumer`), its physical topics, its live client."""

    consumer: str
    topics: tuple[str, ...]
    reader: Callable[[], LagReader | None]


class RuntimeGauges:
    """Refreshes the sampled gauges every `interval_s` until stopped."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        *,
        ready: Callable[[], Awaitable[bool]],
        outbox_age: Callable[[], Awaitable[float]],
        consumers: Callable[[], Iterable[LagSource]],
        interval_s: float = 10.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self._ready = ready
        self._outbox_age = outbox_age
        self._consumers = consumers
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._task: asyncio.Task[None] | None = None
        self._failing: set[str] = set()

    async def sample(self) -> None:
        """One refresh of every gauge, the parts concurrently."""
        await asyncio.gather(
            self._part("ready", self._sample_ready()),
            self._part("outbox", self._sample_outbox()),
            *(self._part(f"lag:{s.consumer}", self._sample_lag(s)) for s in self._consumers()),
        )

    async def _sample_ready(self) -> None:
        self.metrics.ready.set(1 if await self._ready() else 0)

    async def _sample_outbox(self) -> None:
        self.metrics.outbox_oldest_pending_age_seconds.set(await self._outbox_age())

    async def _sample_lag(self, source: LagSource) -> None:
        reader = source.reader()
        if reader is None:  # not subscribed (yet, or any more): nothing assigned here
            lag = dict.fromkeys(source.topics, 0)
        else:
            lag = await consumer_lag(reader, source.topics)
        for topic, records in lag.items():
            self.metrics.consumer_lag_records.labels(source.consumer, topic).set(records)

    async def _part(self, name: str, work: Awaitable[None]) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                await work
        except Exception as err:  # noqa: BLE001 - a gauge keeps its last value; the other parts go on
            if name not in self._failing:  # logged once per outage, not every interval
                self._failing.add(name)
                log.warning("gauge sampling failed: %s (%s)", name, type(err).__name__)
        else:
            self._failing.discard(name)

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="runtime-gauges")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
