"""Deliveries in PostgreSQL: the group-commit writer of the ingress, the operators' transaction and read side.

`PgDeliveryWriter` collects the deliveries that arrive while a transaction is in flight and commits them
together: ONE `INSERT … ON CONFLICT (provider, provider_event_id) DO NOTHING RETURNING` takes the dedup keys,
the events of the rows it inserted go to the outbox (COPY) in the same transaction, then every waiting request
learns its outcome. Each request still answers only after its own delivery committed; under load a commit
carries hundreds of them, so the per-request cost of a transaction (round trips, WAL flush) vanishes.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from prizeflow_contracts.envelope import StagedEvent
from prizeflow_runtime.db import driver_connection
from prizeflow_runtime.outages import is_outage
from prizeflow_runtime.outbox import add_events
from prizeflow_webhooks.application.metrics import WebhooksMetrics
from prizeflow_webhooks.application.ports import DeliveryPage, DeliveryTrail, NewDelivery, StoredDelivery

log = logging.getLogger(__name__)

_INSERT = """
INSERT INTO deliveries (
    provider, provider_type, provider_event_id, kind, outcome, ignored_reason, event_type, event,
    published_event_id, correlation_id, correlation_generated, confirmed, body, body_sha256, signature_timestamp,
    received_at
)
SELECT * FROM unnest(
    $1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[],
    $8::jsonb[], $9::uuid[], $10::varchar[], $11::boolean[], $12::boolean[], $13::bytea[], $14::char(64)[],
    $15::bigint[], $16::timestamptz[]
)
ON CONFLICT (provider, provider_event_id) DO NOTHING
RETURNING provider_event_id, provider
"""
_SEEN = "SELECT 1 FROM deliveries WHERE provider = $1 AND provider_event_id = $2"

_Pending = tuple[NewDelivery, StagedEvent | None, "asyncio.Future[bool]"]


class PgDeliveryWriter:
    """Group commit: at most `concurrency` transactions in flight, each taking every delivery waiting (up to
    `max_batch`). A lone request commits at once; requests arriving meanwhile share the next commit."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 500,
        concurrency: int = 2,
        metrics: WebhooksMetrics | None = None,
    ) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.metrics = metrics
        self._pending: list[_Pending] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def write(self, delivery: NewDelivery, event: StagedEvent | None) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, event, future))
        if len(self._flushers) < self.concurrency:
            task = asyncio.create_task(self._flush(), name="deliveries-group-commit")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        # Shielded: a client that hangs up does not cancel a commit other requests share.
        return await asyncio.shield(future)

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        async with self.engine.connect() as conn:
            raw = await driver_connection(conn)
            return await raw.fetchval(_SEEN, provider, provider_event_id) is not None

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            await self._commit_or_split(batch)

    async def _commit_or_split(self, batch: list[_Pending]) -> None:
        try:
            results = await self._commit(batch)
        except Exception as err:  # noqa: BLE001 - whatever failed is handed to the requests waiting on it
            if len(batch) > 1 and not is_outage(err):
                # One bad row must not fail the others: each is tried on its own (and fails alone).
                log.warning("deliveries: a group commit failed (%s); committing one by one", type(err).__name__)
                for item in batch:
                    await self._commit_or_split([item])
                return
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        for (_, _, future), stored in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(stored)

    async def _commit(self, batch: Sequence[_Pending]) -> list[bool]:
        started = time.perf_counter()
        # Within a batch the first delivery of a key is the one stored; later ones are duplicates.
        first: dict[tuple[str, str], int] = {}
        for i, (d, _, _) in enumerate(batch):
            first.setdefault((d.provider, d.provider_event_id), i)
        rows = [batch[i][0] for i in first.values()]
        async with self.engine.begin() as conn:
            raw = await driver_connection(conn)
            inserted = await raw.fetch(_INSERT, *_columns(rows))
            stored = {(r["provider"], r["provider_event_id"]) for r in inserted}
            events = [
                e
                for key, i in first.items()
                if key in stored and (e := batch[i][1]) is not None
            ]  # fmt: skip
            await add_events(conn, events)
        if self.metrics is not None:
            self.metrics.write_batch.observe(len(batch))
            self.metrics.write_seconds.observe(time.perf_counter() - started)
        return [
            first[(d.provider, d.provider_event_id)] == i and (d.provider, d.provider_event_id) in stored
            for i, (d, _, _) in enumerate(batch)
        ]

    async def stop(self) -> None:
        """Let the commits in flight finish (their requests are waiting for them)."""
        if self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)


def _columns(rows: Sequence[NewDelivery]) -> list[list[Any]]:
    return [
        [d.provider for d in rows],
        [d.provider_type for d in rows],
        [d.provider_event_id for d in rows],
        [d.kind for d in rows],
        [d.outcome for d in rows],
        [d.ignored_reason for d in rows],
        [d.event_type for d in rows],
        [d.event_json for d in rows],
        [d.published_event_id for d in rows],
        [d.correlation_id for d in rows],
        [d.correlation_generated for d in rows],
        [d.confirmed for d in rows],
        [d.body for d in rows],
        [d.body_sha256 for d in rows],
        [d.signature_timestamp for d in rows],
        [d.received_at for d in rows],
    ]


class SqlDeliveryTx:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def lock(self, delivery_id: int) -> StoredDelivery | None:
        row = (
            await self.conn.execute(
                text(
                    "SELECT id, provider, provider_event_id, outcome, event::text AS event_json, correlation_id, "
                    "republished FROM deliveries WHERE id = :id FOR UPDATE"
                ),
                {"id": delivery_id},
            )
        ).first()
        if row is None:
            return None
        return StoredDelivery(
            id=row.id,
            provider=row.provider,
            provider_event_id=row.provider_event_id,
            outcome=row.outcome,
            event_json=row.event_json,
            correlation_id=row.correlation_id,
            republished=row.republished,
        )

    async def mark_republished(self, delivery_id: int, *, at: datetime) -> None:
        await self.conn.execute(
            text("UPDATE deliveries SET republished = republished + 1, last_republished_at = :at WHERE id = :id"),
            {"id": delivery_id, "at": at},
        )

    async def add_events(self, events: Sequence[StagedEvent]) -> None:
        await add_events(self.conn, events)


def sql_store_factory(engine: AsyncEngine) -> Any:
    @asynccontextmanager
    async def store() -> AsyncIterator[SqlDeliveryTx]:
        async with engine.begin() as conn:
            yield SqlDeliveryTx(conn)

    return store


_LIST_COLUMNS = (
    "id, provider, provider_type, provider_event_id, kind, outcome, ignored_reason, event_type, "
    "published_event_id, correlation_id, correlation_generated, confirmed, body_sha256, "
    "octet_length(body) AS body_bytes, signature_timestamp, received_at, republished, last_republished_at"
)


_OF_FLOW = text(
    """
    SELECT id, provider, provider_event_id, kind, outcome, ignored_reason, event_type, confirmed, received_at,
           republished, last_republished_at,
           coalesce(event->'data'->>'top_up_id', event->'data'->>'idempotency_key',
                    event->'data'->>'provider_payout_ref', provider_event_id) AS subject
    FROM deliveries WHERE correlation_id = :cid ORDER BY received_at, id LIMIT :limit
    """
)


# Replicas may prune at once: each takes rows the others have not locked. The BRIN index on `received_at` finds
# the old ones (rows are appended in arrival order). A short lock_timeout: pruning yields to the ingress.
_PRUNE = text(
    """
    DELETE FROM deliveries WHERE id IN (
        SELECT id FROM deliveries WHERE received_at < :cutoff LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    """
)


class SqlDeliveryRetention:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def delete_received_before(self, cutoff: datetime, *, limit: int) -> int:
        async with self.engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            result = await conn.execute(_PRUNE, {"cutoff": cutoff, "limit": limit})
        return int(result.rowcount)


class SqlDeliveryQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def deliveries_of(self, correlation_id: str, *, limit: int) -> list[DeliveryTrail]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_OF_FLOW, {"cid": correlation_id, "limit": limit})).all()
        return [
            DeliveryTrail(
                id=r.id,
                provider=r.provider,
                provider_event_id=r.provider_event_id,
                kind=r.kind,
                outcome=r.outcome,
                ignored_reason=r.ignored_reason,
                event_type=r.event_type,
                subject=r.subject,
                confirmed=r.confirmed,
                received_at=r.received_at,
                republished=r.republished,
                last_republished_at=r.last_republished_at,
            )
            for r in rows
        ]

    async def list_deliveries(
        self, *, provider: str | None, outcome: str | None, before_id: int | None, limit: int
    ) -> DeliveryPage:
        where, params = [], {"limit": limit + 1}
        if provider is not None:
            where.append("provider = :provider")
            params["provider"] = provider  # type: ignore[assignment]
        if outcome is not None:
            where.append("outcome = :outcome")
            params["outcome"] = outcome  # type: ignore[assignment]
        if before_id is not None:
            where.append("id < :before")
            params["before"] = before_id
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_LIST_COLUMNS} FROM deliveries {clause} ORDER BY id DESC LIMIT :limit"  # noqa: S608 - fixed fragments, values bound
        async with self.engine.connect() as conn:
            rows = [_view(dict(r._mapping)) for r in await conn.execute(text(sql), params)]
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return DeliveryPage(items=rows[:limit], next_cursor=next_cursor)

    async def get_delivery(self, delivery_id: int) -> dict[str, Any] | None:
        sql = f"SELECT {_LIST_COLUMNS}, event::text AS event_json, body FROM deliveries WHERE id = :id"  # noqa: S608 - fixed fragments
        async with self.engine.connect() as conn:
            row = (await conn.execute(text(sql), {"id": delivery_id})).first()
        if row is None:
            return None
        found = dict(row._mapping)
        body = bytes(found.pop("body"))
        out = _view(found)
        try:
            out["body"] = body.decode()
        except UnicodeDecodeError:
            out["body_base64"] = base64.b64encode(body).decode()
        return out


def _view(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif key == "published_event_id" and value is not None:
            out[key] = str(value)
        elif key == "body_sha256":
            out[key] = str(value).strip()
        else:
            out[key] = value
    return out


__all__ = ["PgDeliveryWriter", "SqlDeliveryQueries", "SqlDeliveryTx", "sql_store_factory"]
