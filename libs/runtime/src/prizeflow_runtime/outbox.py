"""Transactional outbox: events are rows written in the same transaction as the state change.

`OutboxRelay` publishes committed rows in `seq` order with an idempotent producer (acks=all), awaits the
broker's acknowledgement of the whole batch, then deletes the rows: the outbox holds only what is still to
be published, and Kafka is the record of what was. A crash between the two re-publishes the batch;
consumers dedup by event id, so delivery is effectively once. One relay per database is active at a time
(a PostgreSQL advisory lock), which keeps per-key order across replicas.

Why delete rather than mark: marking a row published was a non-HOT UPDATE (a second copy of the row, new
index entries) and left a dead entry in the partial "unpublished" index for every event until VACUUM; the
relay's query slowed down with every event ever published (measured: 14-20 ms a poll after 50,000
events, 265 ms once the planner switched to a bitmap scan + on-disk sort). A DELETE writes no new row
version, and the relay walks the primary key in order. What it deleted stays in that index until VACUUM,
and every poll steps over it, so the relay vacuums the outbox itself after every `vacuum_every` rows it
deleted (a small table: tens of milliseconds, on a connection of its own) instead of waiting up to a
minute for autovacuum while the walk grows longer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from prizeflow_contracts.envelope import Envelope, EventDraft, StagedEvent
from prizeflow_runtime.admin_audit import admin_audit_rows, record_admin_audit
from prizeflow_runtime.db import driver_connection
from prizeflow_runtime.outbox_kafka import (
    _PARTITION_CACHE_SIZE,
    _RELAY_SESSION,
    KafkaStalledError,
    abandon_producer,
    idempotent_producer,
    physical_topic,
)
from prizeflow_runtime.outbox_relay import (
    _WATERMARK,
    IDLE_POLL_MAX_S,
    OUTBOX_SWEEP_CHANNEL,
    RELAY_LOCK_KEY,
    REPLACE_PRODUCER_AFTER_FAILURES,
    OutboxRelay,
    RelayResult,
)


async def add_event(
    session: AsyncSession | AsyncConnection, envelope: Envelope[Any], *, topic: str | None = None
) -> None:
    """Stage an event in the caller's transaction; it is published only if that transaction commits."""
    await add_events(session, [envelope], topic=topic)


async def add_events(
    session: AsyncSession | AsyncConnection,
    events: Sequence[Envelope[Any] | EventDraft[Any] | StagedEvent],
    *,
    topic: str | None = None,
) -> None:
    """Stage many events with ONE statement (a COPY), keeping their order in `seq`.

    Takes envelopes, `EventDraft`s, or `StagedEvent`s already encoded by `stage_event` (the hot paths' cheaper
    forms). An `AdminActionRecorded` among them is also kept in `admin_audit`, in the same transaction
    (`prizeflow_runtime.admin_audit`): every service's audit goes through here.
    """
    if not events:
        return
    staged = [e if isinstance(e, StagedEvent) else e.staged() for e in events]
    if topic is not None:
        staged = [e._replace(topic=topic) for e in staged]
    # COPY, in order (so `seq` follows the list): a fraction of the client and server time of an INSERT.
    # The statement-level NOTIFY trigger fires for COPY as for INSERT.
    raw = await driver_connection(session)
    await raw.copy_records_to_table(
        "outbox",
        records=[(e.id, e.topic, e.key, e.headers_json, e.payload, e.type) for e in staged],
        columns=_OUTBOX_COLUMNS,
    )
    await record_admin_audit(raw, admin_audit_rows(staged))
    if _PUBLISHERS and isinstance(session, AsyncSession):
        _stage_for_publisher(session.sync_session, staged)
    elif _PUBLISHERS and isinstance(session, AsyncConnection) and session.sync_engine in _PUBLISHERS:
        # A bare connection tells no listener after its commit, so no publisher will take these: ask the relay to
        # sweep at once. NOTIFY is transactional: it reaches the relay when (and only if) this transaction commits.
        await raw.execute(_ASK_RELAY_TO_SWEEP, OUTBOX_SWEEP_CHANNEL)


class CommitPublisher(Protocol):
    """What takes a committed transaction's events to publish them at once (`OutboxPublisher`)."""

    def submit(self, events: Sequence[StagedEvent]) -> None:
        """Called right after the commit, on the event loop; must not block (it queues)."""
        ...


_ASK_RELAY_TO_SWEEP = "SELECT pg_notify($1, '')"

# The publisher of each engine's commits (`publish_after_commit`). Keyed by the sync engine a session is bound to.
_PUBLISHERS: WeakKeyDictionary[Engine, CommitPublisher] = WeakKeyDictionary()
_STAGED = "prizeflow_outbox_staged"  # Session.info key: (publisher, events staged in the open transaction)
_hooks_installed = False


def publish_after_commit(engine: AsyncEngine, publisher: CommitPublisher | None) -> None:
    """From now on, a transaction of a session bound to `engine` that staged events hands them to `publisher` right
    after it commits (None: no longer; the relay sweeps them). Events staged on a bare connection are not handed
    over (SQLAlchemy tells a connection's listeners before its commit, not after): their transaction asks the relay
    to sweep at once (a NOTIFY on `OUTBOX_SWEEP_CHANNEL`, delivered at its commit)."""
    global _hooks_installed  # noqa: PLW0603 - process-wide session hooks, installed once
    if not _hooks_installed:
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_transaction_end", _after_transaction_end)
        _hooks_installed = True
    if publisher is None:
        _PUBLISHERS.pop(engine.sync_engine, None)
    else:
        _PUBLISHERS[engine.sync_engine] = publisher


def _stage_for_publisher(session: Session, staged: list[StagedEvent]) -> None:
    bind = session.get_bind()
    publisher = _PUBLISHERS.get(bind) if isinstance(bind, Engine) else None
    if publisher is None:
        return
    pending = session.info.get(_STAGED)
    if pending is None:
        session.info[_STAGED] = (publisher, staged)
    else:
        pending[1].extend(staged)


def _after_commit(session: Session) -> None:
    pending = session.info.pop(_STAGED, None)
    if pending is not None:
        pending[0].submit(pending[1])


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """The session's transaction ended without a commit (a commit handed its events over first). A savepoint's end
    is not the transaction's: what it rolled back is not in the outbox, and the publisher publishes only rows there."""
    if transaction.parent is None:
        session.info.pop(_STAGED, None)


_OUTBOX_COLUMNS = ("event_id", "topic", "key", "headers", "payload", "event_type")


_OLDEST_PENDING_AGE = text(
    "SELECT coalesce(extract(epoch FROM clock_timestamp() - created_at), 0) FROM outbox ORDER BY seq LIMIT 1"
)


async def oldest_pending_age(conn: AsyncConnection) -> float:
    """Seconds the oldest committed, unpublished outbox row has waited, by the database's clock (0: none). Published
    rows are deleted, so the lowest `seq` left is the oldest one waiting (one index probe)."""
    age = await conn.scalar(_OLDEST_PENDING_AGE)
    return max(0.0, float(age)) if age is not None else 0.0


__all__ = [
    "IDLE_POLL_MAX_S",
    "OUTBOX_SWEEP_CHANNEL",
    "RELAY_LOCK_KEY",
    "REPLACE_PRODUCER_AFTER_FAILURES",
    "_PARTITION_CACHE_SIZE",
    "_RELAY_SESSION",
    "_WATERMARK",
    "CommitPublisher",
    "KafkaStalledError",
    "OutboxRelay",
    "RelayResult",
    "abandon_producer",
    "add_event",
    "add_events",
    "idempotent_producer",
    "oldest_pending_age",
    "physical_topic",
    "publish_after_commit",
]
