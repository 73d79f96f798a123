"""Reliable consumption: inbox dedup, retry in place, DLQ with a reason, offsets committed after the DB.

The partition never moves past a message that has not been either applied (its DB transaction committed)
or dead-lettered (its refusal committed, the DLQ copy with it in the outbox): offsets are committed
explicitly, per partition, only after the whole poll is settled. This rules out the failure of FastStream
issues #1980 and #2618, where a failed message is skipped because a later one's commit moves the group
offset past it.

A poll is first applied as ONE database transaction (fast path); one that loses a deadlock or a
serialization failure (rolled back whole) is applied again, whole, up to `batch_conflict_retries` times. If
it fails, the records before the one a refusal names are applied together, that one alone, then the rest
(`refusing` names the event a handler was applying); a failure that names no record halves the batch, first
half then second, each settled the same way. So one poison message cannot hold back or roll back its
neighbours, and costs a few transactions (about 2*log2(n) unnamed) rather than one per record. The record
that fails alone is retried in its own transaction with exponential backoff; after `max_attempts` it goes to
`<topic>.dlq`. An `EventRefusal` (malformed, unknown type, illegal transition...) goes to the DLQ at once:
retrying cannot fix it.

A dead-lettered record is remembered as processed (`prizeflow_runtime.dead_letters`): its inbox row says
`refused` and the DLQ copy is staged in the outbox in that same transaction, so a redelivery or a replay
from offset 0 is a no-op for refused events as for applied ones. The inbox also keeps a digest of each
record's bytes: the same event id with other bytes is refused as `event_id_reused`, never absorbed.

With `lanes` > 1 the poll's partitions are dealt into that many lanes, each applied as its own transaction
on its own connection, concurrently: while one lane's statements run in PostgreSQL the process computes
the next lane. Per-key order holds (a key lives in one partition, a partition in one lane); the offsets are
still committed only once every lane has settled. For consumers whose aggregates are keyed like the topic.

A consumer that names the event types it `acts_on` skips the records of the other types this process knows,
before decoding them and before the inbox: a record whose `ce_type` header (written by every producer from the
envelope's own type) names a known type the handler would do nothing with costs no validation, no inbox row and
no transaction, and its offset passes with the poll's, as an ignored event's always did. Everything else is
decoded and judged as before: a record without the header, a type this code does not know (a newer version: it
is refused and dead-lettered, never dropped unseen) and an old version an upcaster reads. The handler's set must
be whole: a type it acts on and leaves out would be skipped (each service's tests hold its handlers to theirs).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.envelope import Envelope, EventPayload, decode
from prizeflow_contracts.errors import EventRefusal, refusing
from prizeflow_runtime.dead_letters import (
    DeadLetter,
    DeadLetterStore,
    RefusalHook,
    SqlDeadLetters,
    dlq_topic_for,
)
from prizeflow_runtime.inbox import Claimed, Delivery, claim_many, digest_of, hour_of
from prizeflow_runtime.inbox_retention import BEYOND_CLOCK_SKEW, BEYOND_DEDUP_HORIZON, InboxRetention
from prizeflow_runtime.logging import log_context
from prizeflow_runtime.metrics import RuntimeMetrics
from prizeflow_runtime.outages import is_infrastructure_outage, is_transient_conflict
from prizeflow_runtime.records import dead_letter_of, next_offsets, to_read
from prizeflow_runtime.retry import Backoff, backoff_delay
from prizeflow_runtime.settings import RetrySettings

log = logging.getLogger(__name__)

# A handler receives the service's `books` (`prizeflow_runtime.uow`): its stores bound to the poll's transaction, the
# inbox rows already claimed. `bind(session)` builds them; a consumer without one hands the session itself.
EventHandler = Callable[[Any, Envelope[EventPayload]], Awaitable[None]]
BatchHandler = Callable[[Any, Sequence[Envelope[EventPayload]]], Awaitable[None]]


def unbound(session: AsyncSession) -> Any:
    """No stores: the handler receives the session itself (a consumer of the runtime's own, or a test)."""
    return session


class OffsetCommitter(Protocol):
    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


@dataclass(slots=True)
class _Item:
    record: ConsumerRecord[bytes, bytes]
    digest: bytes
    envelope: Envelope[EventPayload] | None = None
    refusal: EventRefusal | None = None

    @property
    def delivery(self) -> Delivery:
        assert self.envelope is not None
        r = self.record
        return Delivery(self.envelope.id, r.topic, r.partition, r.offset, self.envelope.time, self.digest)


@dataclass
class ReliableConsumer:
    """Applies Kafka records to the database exactly once per event id, with retry and DLQ."""

    name: str
    topics: Sequence[str]
    session_factory: async_sessionmaker[AsyncSession]
    handler: EventHandler | None = None
    batch_handler: BatchHandler | None = None
    retry: RetrySettings = field(default_factory=RetrySettings)
    metrics: RuntimeMetrics | None = None
    # Runs after a transaction commits and before any offset commit (tests use it to crash in that gap).
    after_commit: Callable[[], Awaitable[None]] | None = None
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    # Transactions a poll is split into, by partition, applied concurrently (see the module docstring).
    lanes: int = 1
    # What a lane keeps together instead of a partition: the key two transactions of this consumer would wait on
    # each other for (payouts' requests: the player, whose requests the gate serialises). Every event of one topic
    # key must have one lane key, so per-key order holds within its lane.
    lane_key: Callable[[Envelope[EventPayload]], Hashable] | None = None
    # The deployment's topic suffix: DLQ copies are staged under the contract's topic name, as every event is.
    topic_suffix: str = ""
    dead_letters: DeadLetterStore = field(default_factory=SqlDeadLetters)
    on_refusal: RefusalHook | None = None
    # How long the database gets to answer the probe that tells an outage from a poison record.
    outage_probe_timeout_s: float = 2.0
    # A poll that lost a deadlock or a serialization failure changed nothing: apply it again, whole, this many
    # times (with backoff) before halving it.
    batch_conflict_retries: int = 2
    # The dedup horizon (ADR 0008): an event whose own time is outside it is refused, never applied.
    retention: InboxRetention = field(default_factory=InboxRetention)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # The service's stores on the poll's session: what the handlers and the refusal hook receive.
    bind: Callable[[AsyncSession], Any] = unbound
    # The event types (`EventPayload.event_type()`) the handler does anything with; a record whose type header names
    # another known type is skipped before decoding and before the inbox. None: every record is decoded.
    acts_on: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if (self.handler is None) == (self.batch_handler is None):
            raise ValueError(f"consumer {self.name}: give exactly one of handler or batch_handler")
        if self.lanes < 1:
            raise ValueError(f"consumer {self.name}: lanes must be at least 1")

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
        """Settle every record of a poll; returns the offsets to commit (next offset per partition)."""
        started = time.perf_counter()
        acted_on, skipped = to_read(records, self.acts_on)
        items = [self._decode(r) for r in acted_on]
        now = self.clock()
        for item in items:
            if item.envelope is not None and item.refusal is None:
                item.refusal = self.retention.refusal(item.envelope.time, now)
        for item in items:
            if item.refusal is not None:
                await self._dead_letter(item, item.refusal.reason, item.refusal, attempts=0)
        good, later = self._first_occurrences([i for i in items if i.envelope is not None and i.refusal is None])
        lanes = self._deal(good)
        if len(lanes) == 1:
            await self._settle(lanes[0])
        else:
            await asyncio.gather(*(self._settle(lane) for lane in lanes))
        for item in later:
            await self._apply_with_retry(item)
        if self.metrics is not None:
            # Per delivery, like `applied`'s neighbours: a redelivered poll counts its skipped records again.
            for topic, n in skipped.items():
                self.metrics.consumed.labels(self.name, topic, "skipped").inc(n)
            self.metrics.handle_seconds.labels(self.name).observe(time.perf_counter() - started)
        return next_offsets(records)

    def _deal(self, items: list[_Item]) -> list[list[_Item]]:
        """Partitions (or `lane_key`s) dealt into at most `lanes` lanes, largest first onto the lightest lane; poll
        order is kept within a partition (a lane key)."""
        if self.lanes == 1 or len(items) < 2:
            return [items]
        by_partition: dict[Hashable, list[_Item]] = {}
        key = self.lane_key
        for item in items:
            envelope = item.envelope
            at: Hashable = (
                (item.record.topic, item.record.partition)
                if key is None or envelope is None
                else ("key", key(envelope))
            )
            by_partition.setdefault(at, []).append(item)
        if len(by_partition) == 1:
            return [items]
        lanes: list[list[_Item]] = [[] for _ in range(min(self.lanes, len(by_partition)))]
        for group in sorted(by_partition.values(), key=len, reverse=True):
            min(lanes, key=len).extend(group)
        return lanes

    async def _settle(self, items: list[_Item]) -> None:
        """Apply the items: all in one transaction if they can. Else, if a refusal names its event, the events
        before it together, it alone, then the rest; otherwise the first half then the second. Poll order is kept
        and the record that fails is retried and dead-lettered alone: one bad record in n costs a few
        transactions (about 2*log2(n) when nothing names it), never one per record."""
        if not items:
            return
        if len(items) == 1:
            await self._apply_with_retry(items[0])
            return
        failure = await self._apply_batch(items)
        if failure is None:
            return
        at = _named(items, failure)
        if at is None:
            half = len(items) // 2
            await self._settle(items[:half])
            await self._settle(items[half:])
            return
        # The refusal names its event: those before it apply together, it is settled alone, then the rest.
        await self._settle(items[:at])
        if at == 0:  # refused with nothing of its batch before it: as it would be alone
            assert isinstance(failure, EventRefusal)
            await self._dead_letter(items[0], failure.reason, failure, attempts=1)
        else:
            await self._apply_with_retry(items[at])
        await self._settle(items[at + 1 :])

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> _Item:
        value = record.value or b""
        try:
            return _Item(record, digest_of(value), envelope=decode(value))
        except EventRefusal as refusal:
            return _Item(record, digest_of(value), refusal=refusal)

    async def _apply(self, items: Sequence[_Item]) -> int:
        """One transaction: claim the inbox rows, run the handler on the new events, commit."""
        self._within_horizon(items)
        try:
            async with self.session_factory() as session, session.begin():
                claimed = await claim_many(session, self.name, [i.delivery for i in items])
                fresh = await self._handle_claimed(session, items, claimed)
        except DBAPIError as err:
            if not _no_inbox_partition(err):
                raise
            await self._refuse_forgotten(items, err)
            raise
        if self.after_commit is not None:
            await self.after_commit()
        self._count(items, fresh)
        return len(fresh)

    async def _handle_claimed(self, session: AsyncSession, items: Sequence[_Item], claimed: Claimed) -> set[Any]:
        """The claimed poll: refuse a reused id, run the handler on the events seen for the first time."""
        if claimed.reused:
            reused = sorted(claimed.reused, key=str)[0]
            raise EventRefusal(
                "event_id_reused",
                f"event id {reused} was processed before with different bytes",
                event_id=reused,
            )
        fresh = claimed.fresh
        new = [i.envelope for i in items if i.envelope is not None and i.envelope.id in fresh]
        if new:
            if self.batch_handler is not None:
                await self.batch_handler(self.bind(session), new)
            else:
                assert self.handler is not None
                for envelope in new:
                    with (
                        log_context(correlation_id=envelope.correlationid, event_id=str(envelope.id)),
                        refusing(envelope.id),
                    ):
                        await self.handler(self.bind(session), envelope)
        return fresh

    async def _refuse_forgotten(self, items: Sequence[_Item], err: DBAPIError) -> None:
        """An event inside the horizon found no inbox partition for its hour. If its partition was dropped (the
        horizon was raised since), the inbox has forgotten whether it applied: refused, never applied. Otherwise
        the partition was not created yet (the maintenance is behind): the error stands and is retried."""
        async with self.session_factory() as session:
            dropped_before = await session.scalar(text("SELECT max(dropped_before) FROM inbox_forgotten"))
        if dropped_before is None:
            return
        for item in items:
            assert item.envelope is not None
            if hour_of(item.envelope.time) < dropped_before:
                raise EventRefusal(
                    BEYOND_DEDUP_HORIZON,
                    f"event time {item.envelope.time.isoformat()} is in an inbox partition dropped past the horizon "
                    "(was INBOX_DEDUP_HORIZON_DAYS raised since?)",
                ) from err

    def _within_horizon(self, items: Sequence[_Item]) -> None:
        """Checked again as each transaction starts: a record retried for a long while may have left the horizon
        since it was polled (and its partition may then be dropped)."""
        now = self.clock()
        for item in items:
            assert item.envelope is not None
            refusal = self.retention.refusal(item.envelope.time, now)
            if refusal is not None:
                raise refusal

    async def _apply_batch(self, items: Sequence[_Item]) -> Exception | None:
        """Items in one transaction; None if they applied, else what failed them (`_settle` splits them)."""
        conflicts = 0
        while True:
            try:
                await self._apply(items)
            except EventRefusal as refusal:
                return refusal
            except Exception as err:
                if is_transient_conflict(err) and conflicts < self.batch_conflict_retries:
                    conflicts += 1
                    delay = self._backoff(conflicts)
                    log.warning(
                        "batch of %d lost to a concurrent transaction, again in %.3fs: %r", len(items), delay, err
                    )
                    await self.sleep(delay)
                    continue
                log.warning("batch of %d failed; settling each half on its own", len(items), exc_info=True)
                return err
            return None

    async def _apply_with_retry(self, item: _Item) -> None:
        assert item.envelope is not None
        env = item.envelope
        with log_context(correlation_id=env.correlationid, event_id=str(env.id)):
            attempt = 0
            outage = Backoff(base=0.4, cap=5.0)  # 0.4 s doubling to 5 s (jittered) while the database is down
            while attempt < self.retry.max_attempts:
                attempt += 1
                try:
                    await self._apply([item])
                    return
                except EventRefusal as refusal:
                    await self._dead_letter(item, refusal.reason, refusal, attempts=attempt)
                    return
                except Exception as err:
                    if is_infrastructure_outage(err) and not await self._database_answers():
                        # The database is down or restarting: not this event's fault. The partition waits
                        # (attempts are not spent) instead of dead-lettering good events during an outage. An
                        # error that only looks like an outage while the database answers is this record's own
                        # failure: it spends attempts like any other (a handler timing out for ever is poison).
                        attempt -= 1
                        delay = outage.next()
                        log.warning("database unavailable, retrying in %.1fs: %s", delay, type(err).__name__)
                        await self.sleep(delay)
                        continue
                    if attempt == self.retry.max_attempts:
                        log.exception("handler failed %d times; dead-lettering", attempt)
                        await self._dead_letter(item, "handler_failed", err, attempts=attempt)
                        return
                    if self.metrics is not None:
                        self.metrics.handler_retries.labels(self.name, item.record.topic).inc()
                    delay = self._backoff(attempt)
                    log.warning("handler failed (attempt %d), retrying in %.3fs: %r", attempt, delay, err)
                    await self.sleep(delay)

    async def _database_answers(self) -> bool:
        """Probe the database the way a handler uses it: a session that can run one statement, briefly."""
        try:
            async with asyncio.timeout(self.outage_probe_timeout_s), self.session_factory() as session:
                await session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure to answer means "unreachable" here
            return False
        return True

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped (`RetrySettings`, in ms)."""
        return backoff_delay(attempt, base=self.retry.backoff_initial_ms, cap=self.retry.backoff_max_ms) / 1000

    async def _dead_letter(self, item: _Item, reason: str, err: BaseException, *, attempts: int) -> None:
        """Remember the refusal, its inbox row and its DLQ copy in one transaction; retried until it commits
        (the partition waits: a refusal is never dropped)."""
        letter = self._letter(item, reason, err, attempts)
        dlq_topic = dlq_topic_for(item.record.topic, self.topic_suffix)
        backoff, failures, hook = Backoff(base=0.2, cap=10.0), 0, self.on_refusal
        while True:
            try:
                async with self.session_factory() as session, session.begin():
                    recorded = await self.dead_letters.record(session, letter, dlq_topic=dlq_topic)
                    if recorded is not None and hook is not None:
                        await hook(self.bind(session), letter)
                break
            except Exception:
                failures += 1
                log.exception("could not record a dead letter; the partition waits until it can")
                if hook is not None and failures >= self.retry.max_attempts:
                    log.error("the refusal hook keeps failing: recording the dead letter without it")
                    hook = None
                await self.sleep(backoff.next())
        log.error(
            "event dead-lettered",
            extra={
                "reason": reason,
                "dlq_topic": dlq_topic,
                "offset": item.record.offset,
                "detail": letter.detail[:500],
            },
        )
        if self.metrics is not None and recorded is not None:
            self.metrics.dead_lettered.labels(self.name, item.record.topic, reason).inc()
            self.metrics.consumed.labels(self.name, item.record.topic, "dead_lettered").inc()

    def _letter(self, item: _Item, reason: str, err: BaseException, attempts: int) -> DeadLetter:
        outside = reason in (BEYOND_DEDUP_HORIZON, BEYOND_CLOCK_SKEW)

        def remembered(at: datetime) -> bool:
            """Outside the dedup horizon the event's inbox partition may be gone: its letter keeps no time."""
            return not outside and self.retention.refusal(at, self.clock()) is None

        return dead_letter_of(
            item.record,
            item.envelope,
            consumer=self.name,
            digest=item.digest,
            reason=reason,
            err=err,
            attempts=attempts,
            remembered=remembered,
        )

    async def apply_redrive(self, session: AsyncSession, envelope: Envelope[EventPayload], delivery: Delivery) -> None:
        """An operator's redrive: claim and apply one stored record in the caller's transaction (never one outside
        the dedup horizon: it is refused again)."""
        refusal = self.retention.refusal(envelope.time, self.clock())
        if refusal is not None:
            raise refusal
        claimed = await claim_many(session, self.name, [delivery])
        if envelope.id not in claimed.fresh:
            raise EventRefusal("conflicting_event", f"event {envelope.id} is already processed by {self.name}")
        with log_context(correlation_id=envelope.correlationid, event_id=str(envelope.id)):
            if self.batch_handler is not None:
                await self.batch_handler(self.bind(session), [envelope])
            else:
                assert self.handler is not None
                await self.handler(self.bind(session), envelope)

    def _first_occurrences(self, items: Sequence[_Item]) -> tuple[list[_Item], list[_Item]]:
        """The same event twice in one poll (a duplicate publish) is applied once: keep the first. The same id
        with other bytes is not a duplicate: it is set aside, and once the poll's first occurrences are settled
        it is judged against what the inbox then holds (refused as a reused id, unless it is the bytes the
        inbox already knows)."""
        seen: dict[Any, bytes] = {}
        out: list[_Item] = []
        later: list[_Item] = []
        for item in items:
            assert item.envelope is not None
            first = seen.get(item.envelope.id)
            if first is None:
                seen[item.envelope.id] = item.digest
                out.append(item)
            elif first != item.digest:
                later.append(item)
            elif self.metrics is not None:
                self.metrics.duplicates.labels(self.name, item.record.topic).inc()
                self.metrics.consumed.labels(self.name, item.record.topic, "duplicate").inc()
        return out, later

    def _count(self, items: Sequence[_Item], fresh: set[Any]) -> None:
        """Metrics of a settled poll: one labelled child lookup per topic and outcome, not per record."""
        if self.metrics is None:
            return
        now = datetime.now(UTC)
        applied: dict[str, int] = {}
        duplicate: dict[str, int] = {}
        lag = self.metrics.event_lag_seconds.labels(self.name)
        for item in items:
            assert item.envelope is not None
            topic = item.record.topic
            if item.envelope.id in fresh:
                applied[topic] = applied.get(topic, 0) + 1
                lag.observe(max(0.0, (now - item.envelope.time).total_seconds()))
            else:
                duplicate[topic] = duplicate.get(topic, 0) + 1
        for topic, n in applied.items():
            self.metrics.consumed.labels(self.name, topic, "applied").inc(n)
        for topic, n in duplicate.items():
            self.metrics.duplicates.labels(self.name, topic).inc(n)
            self.metrics.consumed.labels(self.name, topic, "duplicate").inc(n)


def _no_inbox_partition(err: BaseException) -> bool:
    """PostgreSQL may have found no inbox partition for a claimed row's hour (SQLSTATE 23514 from tuple routing).
    Told by the SQLSTATE alone, never the message (its language is the server's `lc_messages`): another check
    violation only costs `_refuse_forgotten` one lookup, which refuses nothing unless the event's hour was dropped,
    and then no claim of it could have succeeded."""
    orig = getattr(err, "orig", None)
    return getattr(orig, "sqlstate", None) == "23514"


def _named(items: Sequence[_Item], failure: Exception) -> int | None:
    """The index of the event a refusal names, if it is one of `items`."""
    if not isinstance(failure, EventRefusal) or failure.event_id is None:
        return None
    return next(
        (i for i, item in enumerate(items) if item.envelope is not None and item.envelope.id == failure.event_id), None
    )
