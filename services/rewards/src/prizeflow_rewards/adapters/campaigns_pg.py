"""Campaigns on PostgreSQL (`CampaignRepository`)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.campaigns import Campaign, CampaignStatus

Conn = AsyncSession | AsyncConnection

_GET = text("SELECT id, name, asset, status, low_threshold FROM campaigns WHERE id = :id")
# NO KEY UPDATE: a held round's foreign key to its campaign (FOR KEY SHARE) never waits for this lock.
_GET_LOCKED = text("SELECT id, name, asset, status, low_threshold FROM campaigns WHERE id = :id FOR NO KEY UPDATE")


class SqlCampaignRepository:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def get(self, campaign_id: str, *, lock: bool = False) -> Campaign | None:
        row = (await self.session.execute(_GET_LOCKED if lock else _GET, {"id": campaign_id})).first()
        if row is None:
            return None
        return Campaign(row.id, row.name, row.asset, CampaignStatus(row.status), row.low_threshold)

    async def all(self) -> list[Campaign]:
        rows = await self.session.execute(
            text("SELECT id, name, asset, status, low_threshold FROM campaigns ORDER BY created_at")
        )
        return [Campaign(r.id, r.name, r.asset, CampaignStatus(r.status), r.low_threshold) for r in rows]

    async def create(self, campaign: Campaign, *, created_by: str) -> bool:
        inserted = (
            await self.session.execute(
                text(
                    "INSERT INTO campaigns (id, name, asset, status, low_threshold, created_by) "
                    "VALUES (:id, :name, :asset, :status, :low, :by) ON CONFLICT (id) DO NOTHING RETURNING id"
                ),
                {
                    "id": campaign.id,
                    "name": campaign.name,
                    "asset": campaign.asset,
                    "status": campaign.status.value,
                    "low": campaign.low_threshold,
                    "by": created_by,
                },
            )
        ).first()
        return inserted is not None

    async def set_status(self, campaign_id: str, status: CampaignStatus) -> None:
        await self.session.execute(
            text("UPDATE campaigns SET status = :s, updated_at = now() WHERE id = :id"),
            {"s": status.value, "id": campaign_id},
        )


__all__ = ["SqlCampaignRepository"]
