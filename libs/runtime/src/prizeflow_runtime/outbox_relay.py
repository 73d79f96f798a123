"""`OutboxRelay`: publishes committed outbox rows to Kafka in `seq` order, one leader per database (see
`prizeflow_runtime.outbox` for why rows are deleted once Kafka acknowledged them)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidProducerEpoch, InvalidProducerIdMapping, OutOfOrderSequenceNumber, ProducerFenced

from prizeflow_runtime.db import OUTBOX_CHANNEL
from prizeflow_runtime.jobs import Retry, Scheduled, Scheduler, Tick
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outbox_kafka import _RELAY_SESSION, KafkaStalledError, _OutboxPublishing
from prizeflow_runtime.retry import Backoff
from prizeflow_runtime.settings import DatabaseTimeouts

log = logging.getLogger(__name__)

# A publisher that left rows behind (a failed publish, a key with an earlier row still waiting) asks the leader relay,
# wherever it runs, to sweep now.
OUTBOX_SWEEP_CHANNEL = "prizeflow_outbox_sweep"
RELAY_LOCK_KEY = 0x5052_4F55_5442_4F58  # "PROUTBOX": one relay leader per database


@dataclass(frozen=True)
class RelayResult:
    published: int
    leader: bool
    waiting: bool = False  # rows are in the outbox, too young to sweep yet (their writer may still publish them)


_SELECT_BATCH = (
    "SELECT seq, topic, key, headers, payload, created_at <= clock_timestamp() - make_interval(secs => $3) AS ripe "
    "FROM outbox WHERE seq <= $2 ORDER BY seq LIMIT $1"
)
# A sweep publishes rows in seq order up to the first one younger than `sweep_after` (its writer is probably
# publishing it right now): never a later row of a key before an earlier one. The probe: is anything there, and is
# the oldest row old enough to sweep? One index probe, the relay's whole idle poll when writers publish themselves.
_OLDEST_ROW = "SELECT created_at <= clock_timestamp() - make_interval(secs => $1) FROM outbox ORDER BY seq LIMIT 1"
# Sequence numbers are handed out at INSERT, and transactions commit in any order: a row committed with seq 8
# may sit above a row with seq 7 whose transaction is still open. Publishing 8 first would break the outbox's
# order (and per-key order with it). So the relay first takes a watermark (the last seq handed out), then waits
# until every transaction that was writing to the outbox at that moment has ended: every seq up to the
# watermark is then final (committed or gone), and only those rows are published, in order. A transaction that
# writes later gets a seq above the watermark. Writers are found by the lock every INSERT/COPY takes on the table
# (in this database: pg_locks is the server's, and a database copied from a template has the same relation OIDs).
_WATERMARK = "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}"
_OUTBOX_WRITERS = """
    SELECT coalesce(array_agg(DISTINCT virtualtransaction), '{}') FROM pg_locks
    WHERE locktype = 'relation' AND relation = 'outbox'::regclass AND mode = 'RowExclusiveLock'
      AND granted AND pid <> pg_backend_pid()
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_WRITERS_STILL_OPEN = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'relation' AND relation = 'outbox'::regclass AND mode = 'RowExclusiveLock'
      AND virtualtransaction = ANY($1::text[])
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
_DELETE_BATCH = "DELETE FROM outbox WHERE seq = ANY($1::bigint[])"


# A relay taking the lead sweeps rows at least this old at once (see `OutboxRelay._ensure_leader`).
_TAKEOVER_MIN_AGE_S = 0.5
# The longest an idle leader waits between polls when no NOTIFY wakes it (see `OutboxRelay._loop`).
IDLE_POLL_MAX_S = 4.0
# Publish failures after which an idempotent producer never succeeds again: the broker no longer knows its producer
# id or sequence numbers (a restarted broker answered OutOfOrderSequenceNumber to every batch, 5 s apart, for the
# 300 s of a fault test's drain), or its epoch was fenced. Only a new producer (a new id) publishes again; the rows
# are resent through it in `seq` order, and consumers drop the copies they already have by event id.
_PRODUCER_BROKEN = (OutOfOrderSequenceNumber, InvalidProducerEpoch, InvalidProducerIdMapping, ProducerFenced)
# Any other publish failure this many times in a row gets a new producer too: no producer state the relay did not
# foresee may stop the outbox for good.
REPLACE_PRODUCER_AFTER_FAILURES = 3


class OutboxRelay(_OutboxPublishing):
    """Publishes committed outbox rows to Kafka, in order, in batches."""

    def __init__(
        self,
        *,
        database_url: str,
        producer: AIOKafkaProducer,
        metrics: RuntimeMetrics | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        topic_suffix: str = "",
        vacuum_every: int = 20_000,
        ack_timeout: float = 60.0,
        renew_producer: Callable[[AIOKafkaProducer], Awaitable[AIOKafkaProducer]] | None = None,
        timeouts: DatabaseTimeouts | None = None,
        sweep_after: float = 0.0,
    ) -> None:
        super().__init__(
            database_url=database_url,
            producer=producer,
            topic_suffix=topic_suffix,
            ack_timeout=ack_timeout,
            vacuum_every=vacuum_every,
            timeouts=timeouts,
        )
        # `sweep_after` > 0: the process that commits events publishes them itself (`OutboxPublisher`), and the relay
        # only sweeps what a crash or a failed publish left: rows older than this many seconds, or everything when a
        # publisher asks for a sweep (it left rows behind). 0: the relay publishes every row as soon as it commits.
        self._sweep_after = sweep_after
        self._sweep_requested = False
        self._took_over = False
        self._sweep_due: float | None = None  # when a commit's events are old enough to sweep (monotonic)
        self.swept = 0  # observable: events this relay published
        # A batch Kafka has not acknowledged after `ack_timeout` seconds (twice the producer's request timeout by
        # default) is a stalled producer, not a slow broker: `renew_producer(old)` abandons it and returns a started
        # replacement, and the relay gives up leadership for a moment so a healthy replica may take over. A producer
        # that fails in a way only a new one recovers from (`_PRODUCER_BROKEN`, or any failure
        # `REPLACE_PRODUCER_AFTER_FAILURES` times in a row) is renewed the same way.
        self._renew_producer = renew_producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._conn: asyncpg.Connection | None = None
        # The relay is a job on a scheduler of its own (it starts with the Kafka clients, before the service's jobs).
        self._jobs = Scheduler()
        self._job: Scheduled | None = None
        self._backoff = Backoff(base=0.1, cap=5.0)
        self._failures = 0  # publish failures in a row (see `REPLACE_PRODUCER_AFTER_FAILURES`)
        self._idle = 0  # polls in a row that found nothing, as leader
        self._leader = False
        self._stop_requested = False
        self._stopped = asyncio.Event()
        self._running = False
        self._watermark_sql: str | None = None
        # Every seq up to this one was published by this relay while it held the lock (None: not known). While
        # the sequence stays there, no row can be waiting: an idle poll is one sequence read, not a pg_locks scan.
        self._drained_to: int | None = None
        self._slow_writer_warning_s = 5.0
        self.waiting_for_writers = False  # observable: the relay waits for an open transaction's seq to settle

    def _lead(self, *, leader: bool) -> None:
        """Remember whether this relay holds the lock, and say so in `*_outbox_relay_leader`."""
        self._leader = leader
        self._drained_to = None  # another relay may have published (and deleted) meanwhile
        if self._metrics is not None:
            self._metrics.outbox_relay_leader.set(1 if leader else 0)

    @property
    def leader(self) -> bool:
        return self._leader

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._lead(leader=False)
            self._conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings)
            await self._conn.execute(_RELAY_SESSION)
            await self._conn.add_listener(OUTBOX_SWEEP_CHANNEL, self._on_notify)
            await self._conn.add_listener(OUTBOX_CHANNEL, self._on_notify)
        return self._conn

    def _on_notify(self, _conn: object, _pid: object, channel: str, _payload: object) -> None:
        if channel == OUTBOX_SWEEP_CHANNEL:
            self._sweep_requested = True
        elif self._sweep_after > 0:
            # A commit staged events. Its writer publishes them; if it has no publisher (a bare connection, a tool),
            # they are swept once old enough: look again then, not before.
            if self._sweep_due is None:
                self._sweep_due = time.monotonic() + self._sweep_after
            return
        self._wake()

    def request_sweep(self) -> None:
        """Sweep everything now, young rows too (a publisher in this process left rows behind)."""
        self._sweep_requested = True
        self._wake()

    async def _ensure_leader(self, conn: asyncpg.Connection) -> bool:
        if not self._leader:
            self._lead(leader=bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY)))
            # A relay that takes the lead (at start, or from a leader that died) sweeps once without waiting the whole
            # `sweep_after`: what a dead process left is not waited for. Rows younger than a couple of poll intervals
            # are left to their writers, which are publishing them (no second copy of a live process's events).
            self._took_over = self._leader
        return self._leader

    async def publish_once(self, *, ripe_only: bool = False) -> RelayResult:
        """Publish one batch if this relay is the leader. Returns how many events went out. `ripe_only`: a sweep,
        in order, of the rows older than `sweep_after` only (see `_OLDEST_ROW`)."""
        conn = await self._connect()
        if not await self._ensure_leader(conn):
            return RelayResult(0, leader=False)
        min_age = self._sweep_after if ripe_only else 0.0
        if self._took_over:
            self._took_over = False
            min_age = min(min_age, max(_TAKEOVER_MIN_AGE_S, 2 * self._poll_interval))
            ripe_only = min_age > 0
        if ripe_only:
            ripe = await conn.fetchval(_OLDEST_ROW, min_age)
            if ripe is None or not ripe:
                return RelayResult(0, leader=True, waiting=ripe is not None)
        last = await self._last_seq(conn)
        if last == self._drained_to:
            return RelayResult(0, leader=True)  # nothing handed out since all was published: no pg_locks scan
        watermark = await self._watermark(conn, last)
        fetched = await conn.fetch(_SELECT_BATCH, self._batch_size, watermark, min_age)
        rows = list(itertools.takewhile(lambda row: row["ripe"], fetched))
        waiting = len(rows) < len(fetched)
        if self._metrics is not None:
            self._metrics.outbox_pending.set(len(fetched))
        if not rows:
            if not waiting:
                self._drained_to = watermark
            return RelayResult(0, leader=True, waiting=waiting)
        started = time.perf_counter()
        await self._send((row["topic"], row["key"], row["headers"], row["payload"]) for row in rows)
        # Only rows Kafka acknowledged are deleted; if this fails they go out again (deduplicated downstream).
        await conn.execute(_DELETE_BATCH, [row["seq"] for row in rows])
        self._deleted(len(rows))
        self.swept += len(rows)
        if self._metrics is not None:
            self._metrics.outbox_publish_seconds.observe(time.perf_counter() - started)
            per_topic: dict[str, int] = {}
            for row in rows:
                per_topic[row["topic"]] = per_topic.get(row["topic"], 0) + 1
            for topic, n in per_topic.items():
                self._metrics.outbox_published.labels(topic).inc(n)  # unsuffixed: bounded labels
        if len(fetched) < self._batch_size and not waiting:
            self._drained_to = watermark  # every row up to the watermark was in this batch
        return RelayResult(len(rows), leader=True, waiting=waiting)

    async def _last_seq(self, conn: asyncpg.Connection) -> int:
        """The last seq handed out (see `_WATERMARK`)."""
        if self._watermark_sql is None:
            sequence = await conn.fetchval("SELECT pg_get_serial_sequence('outbox', 'seq')")
            self._watermark_sql = _WATERMARK.format(sequence=sequence)
        return int(await conn.fetchval(self._watermark_sql))

    async def _watermark(self, conn: asyncpg.Connection, watermark: int) -> int:
        """`watermark` (the last seq handed out, read before) once its fate is decided: every transaction that
        could still commit a row at or below it has ended (see `_WATERMARK`)."""
        writers = await conn.fetchval(_OUTBOX_WRITERS)
        waited, delay = 0.0, 0.001
        try:
            while writers and await conn.fetchval(_WRITERS_STILL_OPEN, writers):
                self.waiting_for_writers = True
                await asyncio.sleep(delay)
                waited += delay
                delay = min(delay * 2, 0.05)
                if waited > self._slow_writer_warning_s:
                    log.warning("outbox relay: waiting for transactions still writing to the outbox")
                    self._slow_writer_warning_s *= 2
        finally:
            self.waiting_for_writers = False
        return watermark

    async def run(self) -> None:
        """Relay until `stop()`: one job on the relay's own scheduler (`tick`), woken by NOTIFY. A relay stopped
        before it ran does not start."""
        if self._stop_requested:
            await self._close_conn()
            return
        self._running = True
        try:
            if self._job is None:
                # No grace: a stop waits for the batch in flight, however long (its own ack timeout bounds it).
                self._job = self._jobs.every(self._poll_interval, self, name="outbox-relay", stop_grace_s=None)
            await self._jobs.start()
            await self._job.finished()
        finally:
            await self._jobs.stop()  # a cancelled run: the job's loop was cancelled with it
            self._running = False
            await self._close_conn()
            self._stopped.set()

    async def tick(self) -> Tick:
        """One pass: publish one batch, and say when the next pass is due.

        A full batch: at once. A leader with nothing to publish polls less and less often (doubling up to
        IDLE_POLL_MAX_S). Publishing everything itself, each commit that stages events NOTIFYs and wakes it at once,
        so the poll only sweeps what a lost notification left. Sweeping behind publishers (`sweep_after` > 0), only a
        publisher that left rows behind wakes it; rows too young to sweep bring it back once they are old enough. A
        failure: a back-off (`Retry`) that no NOTIFY shortens."""
        sweep_all, self._sweep_requested = self._sweep_requested, False
        if self._sweep_due is not None and time.monotonic() >= self._sweep_due:
            self._sweep_due = None
        try:
            try:
                result = await self.publish_once(ripe_only=self._sweep_after > 0 and not sweep_all)
            except BaseException:
                self._sweep_requested = self._sweep_requested or sweep_all  # asked for: still owed after a retry
                raise
            self._backoff.reset()
            self._failures = 0
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            log.warning("outbox relay: database unavailable, retrying", extra={"error": str(err)})
            await self._close_conn()
            return Retry(self._backoff.next())
        except KafkaStalledError as err:
            log.error("outbox relay: Kafka stalled; replacing the producer", extra={"error": str(err)})
            await self._close_conn()  # leadership goes to whichever relay asks next, perhaps a healthy replica's
            await self._replace_producer()
            return Retry(self._backoff.next())
        except Exception as err:
            self._failures += 1
            log.exception("outbox relay: publish failed, retrying the batch")
            if isinstance(err, _PRODUCER_BROKEN) or self._failures >= REPLACE_PRODUCER_AFTER_FAILURES:
                log.error(
                    "outbox relay: the producer cannot publish; replacing it",
                    extra={"error": type(err).__name__, "failures": self._failures},
                )
                await self._replace_producer()
                self._failures = 0
            return Retry(self._backoff.next())
        if result.published >= self._batch_size:
            self._sweep_requested = self._sweep_requested or sweep_all  # the rest of what was asked for
            return 0.0
        self._idle = self._idle + 1 if result.leader and result.published == 0 else 0
        if not result.leader:
            return self._poll_interval * 4
        wait: float = min(self._poll_interval * 2 ** min(self._idle, 8), max(self._poll_interval, IDLE_POLL_MAX_S))
        if result.waiting:
            wait = min(wait, self._sweep_after)
        if self._sweep_due is not None:
            wait = min(wait, max(0.0, self._sweep_due - time.monotonic()))
        return wait

    async def _replace_producer(self) -> None:
        if self._renew_producer is None:
            return  # the caller owns the producer: retrying resends the batch through it
        try:
            self._producer = await self._renew_producer(self._producer)
            self._partitions.clear()
        except Exception:
            log.exception("outbox relay: could not start a new producer; retrying with the old one")

    def _wake(self) -> None:
        if self._job is not None:
            self._job.wake()

    async def stop(self) -> None:
        """Stop after the batch in flight (never mid-statement), then release the connection and the lock."""
        self._stop_requested = True
        if self._running:
            await self._jobs.stop()
            await self._stopped.wait()
        else:
            await self._close_conn()

    async def _close_conn(self) -> None:
        await self._close_vacuum()
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close()
        self._conn = None
        self._lead(leader=False)
