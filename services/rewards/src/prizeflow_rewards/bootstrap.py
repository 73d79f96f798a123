"""The composition root: everything the rewards process runs, built from settings. Nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.di import Provide
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.topics import AUDIT, PAYOUT_EVENTS, PAYOUT_REQUESTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_rewards.adapters.ledger_pg import PgLedger
from prizeflow_rewards.application.campaigns import (
    ChangeCampaignStatus,
    CreateCampaign,
    FundCampaign,
    figures,
    list_campaigns,
)
from prizeflow_rewards.application.claims import ClaimPolicy, ReviewHold, SettlePayout, SubmitClaim
from prizeflow_rewards.application.ports import Ledger
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.application.wallets import TopUp
from prizeflow_rewards.entrypoints.http import RewardsApi, router
from prizeflow_rewards.entrypoints.kafka import PayoutEventsHandler, RoundEventsHandler
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.service import ServiceRuntime

log = logging.getLogger(__name__)

ROUNDS_CONSUMER = "rewards-rounds"
PAYOUTS_CONSUMER = "rewards-payouts"


def claim_policy(settings: RewardsSettings) -> ClaimPolicy:
    return ClaimPolicy(
        min_claim=settings.rewards_min_claim,
        daily_limit=settings.rewards_daily_claim_limit,
        review_threshold=settings.rewards_review_threshold,
        velocity_max_claims=settings.rewards_velocity_max_claims,
        velocity_window_s=settings.rewards_velocity_window_s,
        new_destination_cooldown_s=settings.rewards_new_destination_cooldown_s,
        rejection_rate_bps=settings.rewards_rejection_rate_bps,
        rejection_rate_min_claims=settings.rewards_rejection_rate_min_claims,
        rejection_rate_window_s=settings.rewards_rejection_rate_window_s,
    )


@dataclass
class MetricsRefresher:
    """Pool figures, held claims and the rejection rate come from the database (every replica agrees)."""

    sessions: async_sessionmaker[AsyncSession]
    ledger: Ledger
    metrics: RewardsMetrics
    interval_s: float
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def refresh(self) -> None:
        m = self.metrics
        async with self.sessions() as s:
            for f in (await figures(s, self.ledger, await list_campaigns(s))).values():
                labels = (f["campaign_id"], f["asset"])
                m.pool_funded.labels(*labels).set(f["funded"])
                m.pool_remaining.labels(*labels).set(f["remaining"])
                m.pool_reserved.labels(*labels).set(f["reserved"])
                m.pool_paid.labels(*labels).set(f["paid"])
                m.held_allocations.labels(f["campaign_id"]).set(f["held_rounds"])
            row = (
                await s.execute(
                    text(
                        "SELECT count(*) FILTER (WHERE status = 'held') AS held, "
                        "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
                        "  AND status IN ('paid', 'rejected', 'voided', 'returned')) AS decided, "
                        "count(*) FILTER (WHERE decided_at > now() - interval '1 day' "
                        "  AND status IN ('rejected', 'voided', 'returned')) AS failed FROM claims"
                    )
                )
            ).one()
        m.held_claims.set(row.held)
        m.rejection_rate.set(row.failed / row.decided if row.decided else 0.0)

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("metrics refresh failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="rewards-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def build(settings: RewardsSettings, *, runtime: ServiceRuntime | None = None) -> Litestar:
    rt = runtime or ServiceRuntime(settings)
    metrics = RewardsMetrics.create(rt.registry, settings.service_name)
    ledger = PgLedger(strict=settings.rewards_ledger_strict_locks)
    source = settings.source
    rounds = RoundMoney(ledger=ledger, source=source, pool_low_bps=settings.rewards_pool_low_bps, metrics=metrics)
    # Settlement's decisions only: the game feed moves no money (an entry settlement refuses costs nothing).
    rt.add_consumer(ROUNDS_CONSUMER, [SETTLEMENT_ROUNDS.name], batch_handler=RoundEventsHandler(rounds))
    rt.add_consumer(
        PAYOUTS_CONSUMER, [PAYOUT_EVENTS.name], batch_handler=PayoutEventsHandler(SettlePayout(ledger, metrics))
    )
    rt.produces([REWARDS_EVENTS.name, PAYOUT_REQUESTS.name, AUDIT.name])
    api = RewardsApi(
        sessions=rt.sessions,
        ledger=ledger,
        source=source,
        create_campaign=CreateCampaign(source),
        fund_campaign=FundCampaign(ledger, source, metrics),
        change_status=ChangeCampaignStatus(source),
        rounds=rounds,
        submit_claim=SubmitClaim(ledger, claim_policy(settings), source, metrics),
        review=ReviewHold(ledger, source, metrics),
        top_up=TopUp(ledger, source, metrics),
        metrics=metrics,
    )
    refresher = MetricsRefresher(rt.sessions, ledger, metrics, settings.rewards_metrics_refresh_s)
    app = rt.http_app([router()], dependencies={"api": Provide(lambda: api, sync_to_thread=False)})
    app.on_startup.append(refresher.start)
    app.on_shutdown.insert(0, refresher.stop)
    return app
