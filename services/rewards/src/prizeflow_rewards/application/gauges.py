"""RefreshRewardsGauges: pool figures, held claims and the rejection rate read from the database, a job on the
scheduler (every replica reads the same figures, so every replica's gauges agree)."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.figures import pool_figures
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.uow import UnitOfWork


@dataclass
class RefreshRewardsGauges:
    uow: UnitOfWork[Books]
    metrics: RewardsMetrics

    async def tick(self) -> bool:
        m = self.metrics
        async with self.uow() as books:
            campaigns = await books.campaigns.all()
            figures = await pool_figures(books, campaigns)
            held, decided, failed = await books.claims.stats()
        for status in CampaignStatus:
            m.campaigns.labels(status.value).set(sum(1 for c in campaigns if c.status is status))
        for f in figures.values():
            labels = (f["campaign_id"], f["asset"])
            m.pool_funded.labels(*labels).set(f["funded"])
            m.pool_remaining.labels(*labels).set(f["remaining"])
            m.pool_reserved.labels(*labels).set(f["reserved"])
            m.pool_paid.labels(*labels).set(f["paid"])
            m.held_allocations.labels(f["campaign_id"]).set(f["held_rounds"])
            m.pool_exhausted.labels(f["campaign_id"])  # exported at 0 before the pool's first shortfall
        m.held_claims.set(held)
        m.claims_decided.set(decided)
        m.rejection_rate.set(failed / decided if decided else 0.0)
        return True


__all__ = ["RefreshRewardsGauges"]
