"""Round outcomes and held allocations on PostgreSQL (`RoundAllocations`)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_contracts.envelope import decode
from prizeflow_rewards.application.ports import HeldRound

Conn = AsyncSession | AsyncConnection


class SqlRoundAllocations:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def record_outcomes(self, outcomes: Sequence[tuple[str, str]]) -> None:
        await self.session.execute(
            text(
                "INSERT INTO round_outcomes (round_id, outcome) "
                "SELECT * FROM unnest(CAST(:r AS text[]), CAST(:o AS text[])) ON CONFLICT DO NOTHING"
            ),
            {"r": [r for r, _ in outcomes], "o": [o for _, o in outcomes]},
        )

    async def voided(self, round_id: str) -> bool:
        row = await self.session.execute(
            text("SELECT 1 FROM round_outcomes WHERE round_id = :r AND outcome = 'voided'"), {"r": round_id}
        )
        return row.first() is not None

    async def voided_among(self, round_ids: Sequence[str]) -> set[str]:
        rows = await self.session.execute(
            text("SELECT round_id FROM round_outcomes WHERE round_id = ANY(CAST(:r AS text[])) AND outcome = 'voided'"),
            {"r": list(round_ids)},
        )
        return {r[0] for r in rows}

    async def is_held(self, round_id: str) -> bool:
        row = await self.session.execute(text("SELECT 1 FROM held_allocations WHERE round_id = :r"), {"r": round_id})
        return row.first() is not None

    async def held_among(self, round_ids: Sequence[str]) -> set[str]:
        rows = await self.session.execute(
            text("SELECT round_id FROM held_allocations WHERE round_id = ANY(CAST(:r AS text[]))"),
            {"r": list(round_ids)},
        )
        return {r[0] for r in rows}

    async def hold(self, held: HeldRound) -> None:
        await self.session.execute(
            text(
                "INSERT INTO held_allocations (round_id, campaign_id, asset, total, reason, event, status) "
                "VALUES (:r, :c, :a, :t, :reason, CAST(:e AS jsonb), 'held') ON CONFLICT (round_id) DO NOTHING"
            ),
            {
                "r": held.round_id,
                "c": held.campaign_id,
                "a": held.asset,
                "t": held.total,
                "reason": held.reason,
                "e": held.event.model_dump_json(),
            },
        )

    async def lock_held(self, campaign_id: str) -> list[HeldRound]:
        rows = await self.session.execute(
            text(
                "SELECT round_id, campaign_id, asset, total, reason, event FROM held_allocations "
                "WHERE campaign_id = :c AND status = 'held' ORDER BY held_at, round_id FOR UPDATE"
            ),
            {"c": campaign_id},
        )
        return [
            HeldRound(
                round_id=r.round_id,
                campaign_id=r.campaign_id,
                asset=r.asset,
                total=r.total,
                reason=r.reason,
                event=decode(r.event if isinstance(r.event, str) else json.dumps(r.event)),
            )
            for r in rows
        ]

    async def mark_released(self, round_id: str, *, by: str) -> None:
        await self.session.execute(
            text(
                "UPDATE held_allocations SET status = 'released', released_at = now(), released_by = :by "
                "WHERE round_id = :r"
            ),
            {"r": round_id, "by": by},
        )

    async def held_totals(self) -> dict[str, tuple[int, int]]:
        rows = await self.session.execute(
            text(
                "SELECT campaign_id, count(*) AS n, sum(total) AS total FROM held_allocations "
                "WHERE status = 'held' GROUP BY campaign_id"
            )
        )
        return {r.campaign_id: (int(r.n), int(r.total or 0)) for r in rows}


__all__ = ["SqlRoundAllocations"]
