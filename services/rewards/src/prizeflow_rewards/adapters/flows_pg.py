"""What rewards recorded of one flow, on PostgreSQL (`FlowQueries`): its claims, held rounds and top-ups."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.adapters.topups_pg import top_ups_of_flow
from prizeflow_rewards.application.ports import ClaimTrail, HeldRoundTrail
from prizeflow_rewards.domain.topups import TopUp

Conn = AsyncSession | AsyncConnection

_CLAIMS = text(
    "SELECT id, asset, amount, status, hold_code, rejection_code, created_at, decided_at, settled_at, payout_id "
    "FROM claims WHERE correlation_id = :cid ORDER BY created_at, id LIMIT :limit"
)
_HELD = text(
    "SELECT round_id, campaign_id, asset, total, reason, held_at, released_at FROM held_allocations "
    "WHERE event->>'correlationid' = :cid ORDER BY held_at, round_id LIMIT :limit"
)


class SqlFlowQueries:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def claims_of(self, correlation_id: str, *, limit: int) -> list[ClaimTrail]:
        rows = await self.session.execute(_CLAIMS, {"cid": correlation_id, "limit": limit})
        return [
            ClaimTrail(
                claim_id=r.id,
                asset=r.asset,
                amount=r.amount,
                status=r.status,
                hold_code=r.hold_code,
                rejection_code=r.rejection_code,
                created_at=r.created_at,
                decided_at=r.decided_at,
                settled_at=r.settled_at,
                payout_id=r.payout_id,
            )
            for r in rows
        ]

    async def held_rounds_of(self, correlation_id: str, *, limit: int) -> list[HeldRoundTrail]:
        rows = await self.session.execute(_HELD, {"cid": correlation_id, "limit": limit})
        return [
            HeldRoundTrail(r.round_id, r.campaign_id, r.asset, r.total, r.reason, r.held_at, r.released_at)
            for r in rows
        ]

    async def top_ups_of(self, correlation_id: str, *, limit: int) -> list[TopUp]:
        return await top_ups_of_flow(self.session, correlation_id, limit=limit)


__all__ = ["SqlFlowQueries"]
