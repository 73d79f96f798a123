"""`Contradictions` on PostgreSQL: `final_state_contradictions` (migration 0012), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.contradictions import Contradiction

Conn = AsyncSession | AsyncConnection

_RECORD = text(
    "INSERT INTO final_state_contradictions (subject, aggregate_id, state, reported, source_ref, detail) "
    "VALUES (:subject, :aggregate_id, :state, :reported, :source_ref, :detail) ON CONFLICT DO NOTHING RETURNING id"
)


class SqlContradictions:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def record(self, contradiction: Contradiction) -> bool:
        c = contradiction
        row = await self.session.execute(
            _RECORD,
            {
                "subject": c.subject,
                "aggregate_id": c.aggregate_id,
                "state": c.state,
                "reported": c.reported,
                "source_ref": c.source_ref[:300],
                "detail": c.detail[:1000],
            },
        )
        return row.first() is not None

    async def recent(self, *, limit: int) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            text(
                "SELECT id, subject, aggregate_id, state, reported, source_ref, detail, recorded_at "
                "FROM final_state_contradictions ORDER BY id DESC LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [dict(r) for r in rows.mappings()]


__all__ = ["SqlContradictions"]
