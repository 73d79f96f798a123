"""The Kafka half of the outbox: the idempotent producer every publisher uses, and what the relay and the
publisher after commit share (`_OutboxPublishing`): records go out in `seq` order, one record batch per partition,
every acknowledgement awaited; published rows are deleted and the outbox vacuumed now and then (see
`prizeflow_runtime.outbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from pydantic_core import from_json

from prizeflow_contracts.topics import DLQ_SUFFIX
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.kafka_security import kafka_client_options
from prizeflow_runtime.kafka_settings import KafkaSecurity
from prizeflow_runtime.settings import DatabaseTimeouts

log = logging.getLogger(__name__)

_PARTITIONER = DefaultPartitioner()  # what `idempotent_producer` uses: murmur2 of the key, as the Java client
# Keys (correlation ids) recur within a flow's few seconds, so a small LRU keeps nearly every hit; 200,000 entries
# had cost ~47 MB per service and read as a leak in the soak (RSS rising ~57 MB/h until the cache was cleared).
_PARTITION_CACHE_SIZE = 8_192


class KafkaStalledError(Exception):
    """Kafka left some of a batch's records unacknowledged past the relay's ack timeout."""


async def abandon_producer(producer: AIOKafkaProducer, *, grace: float = 5.0) -> None:
    """Close `producer` without waiting for the batches it still holds.

    An idempotent aiokafka producer never expires a batch: it retries a retriable error forever (`Sender._can_retry`),
    so after a broker restart that left it with stale state its futures may never resolve, and `stop()` waits for them.
    The records stay in the outbox (a relay deletes only what Kafka acknowledged), so whatever this producer might
    still deliver later is a duplicate that consumers drop by event id."""
    try:
        await asyncio.wait_for(producer.stop(), timeout=grace)
    except Exception:  # noqa: BLE001 - a timeout or a broken client: tear the rest down by hand below
        log.warning("outbox relay: the stalled producer did not stop in %.0fs; closing its connections", grace)
    sender = getattr(producer, "_sender", None)  # no public way to stop the sender without flushing
    if sender is not None:
        with contextlib.suppress(Exception):
            await sender.close()
    with contextlib.suppress(Exception):
        await producer.client.close()


def physical_topic(name: str, suffix: str) -> str:
    """The deployment's name of a contract topic: the suffix goes after the topic, before a DLQ's `.dlq`
    (the DLQ of a physical topic T is T + `.dlq`, as `ensure_topics` creates it)."""
    if suffix and name.endswith(DLQ_SUFFIX):
        return name.removesuffix(DLQ_SUFFIX) + suffix + DLQ_SUFFIX
    return name + suffix


def idempotent_producer(
    bootstrap_servers: str,
    *,
    client_id: str | None = None,
    security: KafkaSecurity | None = None,
    **overrides: Any,
) -> AIOKafkaProducer:
    """The producer every Prizeflow publisher uses: idempotent, acks from all in-sync replicas, connected as
    `security` says (`KafkaSecurity()`: the environment's `KAFKA_*` settings)."""
    config: dict[str, Any] = {
        **kafka_client_options(security if security is not None else KafkaSecurity()),
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
        "client_id": client_id or "prizeflow-relay",
    }
    config.update(overrides)
    return AIOKafkaProducer(**config)


# The relay's session: walk the primary key in order (a queue table's statistics are always stale, and a
# sequential or bitmap scan + sort over a backlog costs hundreds of milliseconds), and do not wait for the
# WAL flush when deleting published rows: a delete lost in a crash only means the batch goes out again,
# which consumers dedup by event id.
# Without JIT: with sequential scans priced out, reading the seq's sequence (a relation only a sequential scan
# reads) is planned at ~1e10, far past `jit_above_cost`, and every poll JIT-compiled it: ~15 ms of server CPU for
# a 0.04 ms read, twice a second per relay when idle (measured: 3% of a core per idle relay, most of an idle
# platform's database CPU). None of the relay's statements gains from JIT.
# (SET after connecting rather than startup parameters: connection poolers refuse unknown startup parameters.)
_RELAY_SESSION = "SET enable_seqscan = off; SET enable_bitmapscan = off; SET synchronous_commit = off; SET jit = off"


class _OutboxPublishing:
    """What the relay and the publisher after commit share: records go out in order, one record batch per partition,
    every acknowledgement awaited; published rows are deleted, and the outbox vacuumed every `vacuum_every`."""

    def __init__(
        self,
        *,
        database_url: str,
        producer: AIOKafkaProducer,
        topic_suffix: str,
        ack_timeout: float,
        vacuum_every: int,
        timeouts: DatabaseTimeouts | None,
    ) -> None:
        self._dsn = asyncpg_dsn(database_url)
        # The connection (autocommit statements that each take milliseconds) has the service's limits; the VACUUM
        # has none but the lock wait (autovacuum may hold it).
        limits = timeouts if timeouts is not None else DatabaseTimeouts.defaults()
        self._server_settings = limits.server_settings()
        self._vacuum_server_settings = limits.server_settings(statement_timeout=False)
        self._producer = producer
        self._ack_timeout = ack_timeout
        self._topic_suffix = topic_suffix
        self._vacuum_every = vacuum_every
        self._deleted_since_vacuum = 0
        self._vacuum_conn: asyncpg.Connection | None = None
        self._vacuuming: asyncio.Task[None] | None = None
        self._partitions: OrderedDict[tuple[str, bytes], tuple[int, int]] = OrderedDict()

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer publishing now (a stalled one is replaced: see `OutboxRelay`'s `renew_producer`)."""
        return self._producer

    async def _partition_for(self, topic: str, key: bytes) -> int:
        """The partition the producer's default partitioner picks for `key` (murmur2, as the Java client),
        remembered per key: every event of a flow shares its key (the correlation id)."""
        partitions = self._producer.client.cluster.partitions_for_topic(topic)
        if not partitions:
            partitions = await self._producer.partitions_for(topic)  # waits for the topic's metadata
        cache = self._partitions
        cached = cache.get((topic, key))
        if cached is not None and cached[0] == len(partitions):
            cache.move_to_end((topic, key))
            return cached[1]
        ordered = sorted(partitions)
        chosen: int = _PARTITIONER(key, ordered, ordered)
        cache[(topic, key)] = (len(partitions), chosen)
        cache.move_to_end((topic, key))
        if len(cache) > _PARTITION_CACHE_SIZE:
            cache.popitem(last=False)  # the least recently used key
        return chosen

    async def _send(self, records: Iterable[tuple[str, bytes, Any, bytes]]) -> None:
        """Publish the records (topic, key, headers, payload) and wait until the broker acknowledged every one.

        Rows are appended, in `seq` order, to one record batch per partition and each batch is submitted
        whole (`send_batch`): a few microseconds per record instead of a `send()` each. The idempotent
        producer delivers a partition's batches in submission order, so per-key order is kept.
        """
        producer = self._producer
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for contract_topic, key, headers_json, payload in records:
            topic = physical_topic(contract_topic, self._topic_suffix)
            partition = await self._partition_for(topic, key)
            headers = [(k, v.encode()) for k, v in _json(headers_json).items()]
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[(topic, partition)] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=payload, headers=headers) is None:
                # The batch is full: submit it and start the next one for this partition.
                futures.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[(topic, partition)] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=payload, headers=headers) is None:
                    raise ValueError(f"an outbox event of {len(payload)} bytes is larger than a record batch may be")
        for (topic, partition), builder in builders.items():
            futures.append(await producer.send_batch(builder, topic, partition=partition))
        # Not `wait_for(gather(...))`: cancelling the batches' futures would not stop the producer retrying them.
        done, pending = await asyncio.wait(futures, timeout=self._ack_timeout)
        if pending:
            raise KafkaStalledError(
                f"{len(pending)} of {len(futures)} record batches unacknowledged after {self._ack_timeout:.0f}s"
            )
        for future in done:
            future.result()  # the first failure, as gather would raise it

    def _deleted(self, n: int) -> None:
        """Count rows deleted; every `vacuum_every` of them, VACUUM the outbox on a connection of its own."""
        self._deleted_since_vacuum += n
        if self._deleted_since_vacuum >= self._vacuum_every and (self._vacuuming is None or self._vacuuming.done()):
            self._deleted_since_vacuum = 0
            self._vacuuming = asyncio.create_task(self._vacuum(), name="outbox-vacuum")

    async def _vacuum(self) -> None:
        """VACUUM the outbox: drop the dead rows and index entries every poll would otherwise step over."""
        try:
            if self._vacuum_conn is None or self._vacuum_conn.is_closed():
                self._vacuum_conn = await asyncpg.connect(self._dsn, server_settings=self._vacuum_server_settings)
            started = time.perf_counter()
            await self._vacuum_conn.execute("VACUUM outbox")
            log.debug("outbox vacuumed", extra={"seconds": round(time.perf_counter() - started, 3)})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            # Not fatal: autovacuum does the same later. (Also the answer when the role does not own the table.)
            log.warning("outbox relay: VACUUM outbox failed", extra={"error": str(err)})

    async def _close_vacuum(self) -> None:
        task, self._vacuuming = self._vacuuming, None
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        if self._vacuum_conn is not None and not self._vacuum_conn.is_closed():
            with contextlib.suppress(Exception):
                await self._vacuum_conn.close()
        self._vacuum_conn = None


def _json(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        loaded: dict[str, str] = from_json(value)
        return loaded
    return dict(value)
