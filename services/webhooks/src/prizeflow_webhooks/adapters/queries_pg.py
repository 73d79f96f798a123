"""SqlDeliveryQueries: the operators' and the timeline's reads of the deliveries, and the ingress's "stored
already?" before it asks a provider (each its own short read, outside any transaction of the caller)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import driver_connection
from prizeflow_webhooks.application.ports import DeliveryPage, DeliveryTrail

_SEEN = "SELECT 1 FROM deliveries WHERE provider = $1 AND provider_event_id = $2"

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


class SqlDeliveryQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def seen(self, provider: str, provider_event_id: str) -> bool:
        async with self.engine.connect() as conn:
            raw = await driver_connection(conn)
            return await raw.fetchval(_SEEN, provider, provider_event_id) is not None

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


__all__ = ["SqlDeliveryQueries"]
