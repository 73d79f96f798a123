"""Publish after commit: the process that commits events hands them to Kafka itself, right after the commit.

The outbox stays the record of what must go out (the events are rows in the transaction that changed the state),
but the relay no longer stands between a commit and Kafka: `publish_after_commit(engine, publisher)` makes every
session on `engine` hand the events its transaction staged to this publisher once it commits. The publisher
publishes them (idempotent producer, acks=all, every acknowledgement awaited), then deletes their rows. The relay
(`OutboxRelay` with `sweep_after`) only sweeps what is left: rows of a process killed between its commit and its
publish, rows whose publish failed, rows staged on a bare connection. Delivery stays at least once (a crash between
the publish and the delete sends the events again; consumers dedup by event id).

Per-key order. A key's events must reach Kafka in the order their transactions committed. Before publishing a
batch, one statement (`_CHECK`) finds, among the rows still in the outbox below the batch's last seq, any of the
batch's keys on a row that is not the batch's own: an earlier event of that key still waits (a crash's leftover, a
failed publish, another process's publish in flight). Events of those keys are left to the relay, which sweeps in
seq order, and the publisher asks it to sweep now (`OUTBOX_SWEEP_CHANNEL`). Batches go out one after another, each
deleted before the next is checked, so a failed batch's rows are there for the next check to see. If the outbox
holds more than `backlog_window` seqs below the batch (the relay is draining a backlog), the whole batch is left to
the relay rather than scanned. Rows rolled back with a savepoint, or already swept, are not in the outbox: they are
not published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import asyncpg
from aiokafka import AIOKafkaProducer

from prizeflow_contracts.envelope import StagedEvent
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox_kafka import _RELAY_SESSION, _OutboxPublishing
from prizeflow_runtime.outbox_relay import OUTBOX_SWEEP_CHANNEL
from prizeflow_runtime.settings import DatabaseTimeouts

log = logging.getLogger(__name__)

# $1: the batch's event ids; $2: the backlog window. `present`: which of them are still in the outbox (committed, not
# swept); `behind`: keys of theirs on an earlier row that is not theirs (NULL: a backlog, not scanned). The batch's
# keys and ids are tested with `IN (SELECT ... FROM mine)`, hashed once: written `= ANY(array(...))` and `<> ALL($1)`
# they were a filter that compared every row below the batch with every key of the batch, whatever the statistics —
# 167 ms for a batch of 2,000 behind 18,000 rows, about a second at the window's 100,000 (docs/capacity.md).
_CHECK = """
WITH mine AS (SELECT seq, event_id, key FROM outbox WHERE event_id = ANY($1::uuid[])),
     last AS (SELECT max(seq) AS seq FROM mine)
SELECT
    array(SELECT event_id FROM mine) AS present,
    CASE WHEN (SELECT seq FROM last) - (SELECT min(seq) FROM outbox) > $2 THEN NULL
    ELSE array(
        SELECT DISTINCT o.key FROM outbox o
        WHERE o.seq < (SELECT seq FROM last)
          AND o.key IN (SELECT key FROM mine)
          AND o.event_id NOT IN (SELECT event_id FROM mine)
    ) END AS behind
"""
_DELETE_PUBLISHED = "DELETE FROM outbox WHERE event_id = ANY($1::uuid[])"
_ASK_FOR_SWEEP = "SELECT pg_notify($1, '')"


class OutboxPublisher(_OutboxPublishing):
    """Publishes committed events right after their commit, in commit order, in batches (see the module)."""

    def __init__(
        self,
        *,
        database_url: str,
        producer: Callable[[], AIOKafkaProducer],
        metrics: RuntimeMetrics | None = None,
        topic_suffix: str = "",
        ack_timeout: float = 60.0,
        vacuum_every: int = 20_000,
        timeouts: DatabaseTimeouts | None = None,
        batch_size: int = 2_000,
        backlog_window: int = 100_000,
        max_queued: int = 100_000,
    ) -> None:
        super().__init__(
            database_url=database_url,
            producer=producer(),
            topic_suffix=topic_suffix,
            ack_timeout=ack_timeout,
            vacuum_every=vacuum_every,
            timeouts=timeouts,
        )
        # The process's current producer: the relay may have replaced a stalled one since the last batch.
        self._current_producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._backlog_window = backlog_window
        self._max_queued = max_queued
        self._queue: deque[StagedEvent] = deque()
        self._ready = asyncio.Event()
        self._stopping = False
        self._conn: asyncpg.Connection | None = None
        self.published = 0  # observable: events this publisher published
        self.left_behind = 0  # observable: committed events it left to the relay

    def submit(self, events: Sequence[StagedEvent]) -> None:
        """A transaction committed these events (called by the session's after-commit hook: queues, never blocks).
        Past `max_queued` waiting events the oldest are dropped from memory: their rows wait for the relay, and
        later events of their keys find them in the outbox and wait too."""
        if self._stopping:
            return  # the relay sweeps them
        self._queue.extend(events)
        overflow = len(self._queue) - self._max_queued
        if overflow > 0:
            for _ in range(overflow):
                self._queue.popleft()
            self.left_behind += overflow
            log.warning("outbox publisher: %d events queued past the limit were left to the relay", overflow)
        self._ready.set()

    async def run(self) -> None:
        """Publish what commits until `stop()`; then what is queued, once. Never raises for a failed batch: its
        events stay in the outbox for the relay."""
        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
                try:
                    await self._publish(batch)
                except Exception:  # a bug must not stop the publisher: the rows wait for the relay
                    log.exception("outbox publisher: a batch failed; the relay will sweep it")
                    self.left_behind += len(batch)
                    await self._close()
        finally:
            await self._close()

    def stop(self) -> None:
        """Publish what is already queued, then end `run()`."""
        self._stopping = True
        self._ready.set()

    async def _publish(self, batch: list[StagedEvent]) -> None:
        try:
            conn = await self._connect()
            row = await conn.fetchrow(_CHECK, [e.id for e in batch], self._backlog_window)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("outbox publisher: database unavailable; the relay will sweep", extra={"error": str(err)})
            self.left_behind += len(batch)
            await self._close()
            return
        present = set(row["present"])
        behind = row["behind"]
        blocked: set[bytes] | None = None if behind is None else set(behind)
        ready = [e for e in batch if e.id in present and blocked is not None and e.key not in blocked]
        waiting = sum(1 for e in batch if e.id in present) - len(ready)
        if ready and not await self._send_and_delete(conn, ready):
            waiting += len(ready)
        if waiting:
            self.left_behind += waiting
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.execute(_ASK_FOR_SWEEP, OUTBOX_SWEEP_CHANNEL)

    async def _send_and_delete(self, conn: asyncpg.Connection, events: list[StagedEvent]) -> bool:
        producer = self._current_producer()
        if producer is not self._producer:
            self._producer = producer
            self._partitions.clear()
        started = time.perf_counter()
        try:
            await self._send((e.topic, e.key, e.headers_json, e.payload) for e in events)
        except Exception as err:  # noqa: BLE001 - whatever Kafka said, the rows stay for the relay
            log.warning("outbox publisher: publish failed; the relay will sweep", extra={"error": repr(err)})
            return False
        self.published += len(events)
        try:
            await conn.execute(_DELETE_PUBLISHED, [e.id for e in events])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            # Published but not deleted: the relay sends them again, and consumers drop the copies by event id.
            log.warning("outbox publisher: could not delete published rows", extra={"error": str(err)})
            await self._close()
            return True
        self._deleted(len(events))
        if self._metrics is not None:
            self._metrics.outbox_publish_seconds.observe(time.perf_counter() - started)
            per_topic: dict[str, int] = {}
            for e in events:
                per_topic[e.topic] = per_topic.get(e.topic, 0) + 1
            for topic, n in per_topic.items():
                self._metrics.outbox_published.labels(topic).inc(n)
        return True

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
            await self._conn.execute(_RELAY_SESSION)  # primary-key walks, no JIT, no wait for the delete's flush
        return self._conn

    async def _close(self) -> None:
        await self._close_vacuum()
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None


__all__ = ["OutboxPublisher"]
