"""SqlDeliveries: the stored deliveries in PostgreSQL, on the caller's session (the ingress's group commit, an
operator's action, the retention job). The hot path's insert goes to the driver: one statement for a whole batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_runtime.db import driver_connection
from prizeflow_webhooks.application.ports import NewDelivery, StoredDelivery

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
# Replicas may prune at once: each takes rows the others have not locked. The BRIN index on `received_at` finds
# the old ones (rows are appended in arrival order). A short lock_timeout: pruning yields to the ingress.
_PRUNE = text(
    """
    DELETE FROM deliveries WHERE id IN (
        SELECT id FROM deliveries WHERE received_at < :cutoff LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    """
)


class SqlDeliveries:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, deliveries: Sequence[NewDelivery]) -> set[tuple[str, str]]:
        if not deliveries:
            return set()
        raw = await driver_connection(self.session)
        inserted = await raw.fetch(_INSERT, *_columns(deliveries))
        return {(r["provider"], r["provider_event_id"]) for r in inserted}

    async def lock(self, delivery_id: int) -> StoredDelivery | None:
        row = (
            await self.session.execute(
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
        await self.session.execute(
            text("UPDATE deliveries SET republished = republished + 1, last_republished_at = :at WHERE id = :id"),
            {"id": delivery_id, "at": at},
        )

    async def delete_received_before(self, cutoff: datetime, *, limit: int) -> int:
        await self.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        result = await self.session.execute(_PRUNE, {"cutoff": cutoff, "limit": limit})
        return int(result.rowcount)  # type: ignore[attr-defined]


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


__all__ = ["SqlDeliveries"]
