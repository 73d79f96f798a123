"""`Contradictions` on PostgreSQL: `final_state_contradictions` (migration 0012), in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from prizeflow_rewards.domain.contradictions import Contradiction

_RECORD = text(
    "INSERT INTO final_state_contradictions (subject, aggregate_id, state, reported, source_ref, detail) "
    "VALUES (:subject, :aggregate_id, :state, :reported, :source_ref, :detail) ON CONFLICT DO NOTHING RETURNING id"
)


class PgContradictions:
    async def record(self, tx: Any, contradiction: Contradiction) -> bool:
        c = contradiction
        row = await tx.execute(
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

    async def recent(self, tx: Any, *, limit: int) -> list[dict[str, Any]]:
        rows = await tx.execute(
            text(
                "SELECT id, subject, aggregate_id, state, reported, source_ref, detail, recorded_at "
                "FROM final_state_contradictions ORDER BY id DESC LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [dict(r) for r in rows.mappings()]


__all__ = ["PgContradictions"]
