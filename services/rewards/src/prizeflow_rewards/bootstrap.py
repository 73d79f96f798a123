"""The composition root: everything the rewards process runs, built from settings. Nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from litestar import Litestar
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.topics import (
    AUDIT,
    PAYOUT_EVENTS,
    PAYOUT_REQUESTS,
    REWARDS_EVENTS,
    SETTLEMENT_ROUNDS,
    WEBHOOK_PROVIDER_EVENTS,
)
from prizeflow_rewards.adapters.checkout_sandbox import SandboxCheckout
from prizeflow_rewards.adapters.checkout_stripe import StripeCheckout
from prizeflow_rewards.adapters.claims_pg import PgClaimRepository
from prizeflow_rewards.adapters.corrections_pg import PgLedgerCorrections
from prizeflow_rewards.adapters.exports_pg import PgLedgerExportReader
from prizeflow_rewards.adapters.flows_pg import PgFlowQueries
from prizeflow_rewards.adapters.ledger_book_pg import PgLedgerBook
from prizeflow_rewards.adapters.ledger_pg import PgLedger
from prizeflow_rewards.adapters.pg import pg_stores
from prizeflow_rewards.adapters.transactions import SessionTransactions
from prizeflow_rewards.application.campaigns import ChangeCampaignStatus, CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.claims import (
    ApplyComplianceEvents,
    ClaimPolicy,
    ReviewHold,
    SettlePayout,
    SubmitClaim,
)
from prizeflow_rewards.application.corrections import DecideCorrection, LedgerReads, ProposeCorrection
from prizeflow_rewards.application.exports import ExportLedger
from prizeflow_rewards.application.ports import CheckoutProvider, Stores
from prizeflow_rewards.application.queries import RewardsQueries
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.application.timeline import RewardsTimeline
from prizeflow_rewards.application.topups import (
    ApplyPaymentEvents,
    CheckoutProviders,
    CreateTopUpSession,
    TopUpMoney,
    VerifyTopUpSession,
)
from prizeflow_rewards.application.wallets import SetRiskFlag, TopUp
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_rewards.domain.topups import TopUpLimits
from prizeflow_rewards.entrypoints.http import RewardsApi, router
from prizeflow_rewards.entrypoints.kafka import PaymentEventsHandler, PayoutEventsHandler, RoundEventsHandler
from prizeflow_rewards.expected_schema import EXPECTED_SCHEMA
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import Profile

log = logging.getLogger(__name__)

ROUNDS_CONSUMER = "rewards-rounds"
PAYOUTS_CONSUMER = "rewards-payouts"
PAYMENTS_CONSUMER = "rewards-payments"


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
        review_all_until=settings.rewards_claims_review_until,
    )


def top_up_limits(settings: RewardsSettings) -> TopUpLimits:
    return TopUpLimits(
        minimum=settings.rewards_topup_min,
        maximum=settings.rewards_topup_max,
        daily=settings.rewards_topup_daily_limit,
    )


def checkout_provider(settings: RewardsSettings, sessions: async_sessionmaker[AsyncSession]) -> CheckoutProvider:
    """The configured checkout provider (REWARDS_TOPUP_PROVIDER); settings refused a missing secret already."""
    success_url, cancel_url = settings.checkout_urls
    if settings.topup_provider == "stripe":
        assert settings.stripe_api_key is not None, "the settings require it"
        return StripeCheckout(
            api_key=settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_url,
            success_url=success_url,
            cancel_url=cancel_url,
            timeout_s=settings.stripe_timeout_s,
        )
    base = settings.rewards_sandbox_base_url or f"http://{settings.http_host}:{settings.http_port}"
    return SandboxCheckout(sessions, base_url=base)


@dataclass
class MetricsRefresher:
    """Pool figures, held claims and the rejection rate come from the database (every replica agrees)."""

    sessions: async_sessionmaker[AsyncSession]
    queries: RewardsQueries
    claims: PgClaimRepository
    metrics: RewardsMetrics
    interval_s: float
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    async def refresh(self) -> None:
        m = self.metrics
        async with self.sessions() as s:
            campaigns = await self.queries.campaigns(s)
            for status in CampaignStatus:
                m.campaigns.labels(status.value).set(sum(1 for c in campaigns if c.status is status))
            for f in (await self.queries.figures(s, campaigns)).values():
                labels = (f["campaign_id"], f["asset"])
                m.pool_funded.labels(*labels).set(f["funded"])
                m.pool_remaining.labels(*labels).set(f["remaining"])
                m.pool_reserved.labels(*labels).set(f["reserved"])
                m.pool_paid.labels(*labels).set(f["paid"])
                m.held_allocations.labels(f["campaign_id"]).set(f["held_rounds"])
                m.pool_exhausted.labels(f["campaign_id"])  # exported at 0 before the pool's first shortfall
            held, decided, failed = await self.claims.stats(s)
        m.held_claims.set(held)
        m.claims_decided.set(decided)
        m.rejection_rate.set(failed / decided if decided else 0.0)

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
    rt = runtime or ServiceRuntime(settings, schema=EXPECTED_SCHEMA)
    metrics = RewardsMetrics.create(rt.registry, settings.service_name)
    ledger = PgLedger(strict=settings.rewards_ledger_strict_locks)
    stores = pg_stores()
    source = settings.source
    rounds = RoundMoney(
        ledger=ledger, source=source, pool_low_bps=settings.rewards_pool_low_bps, metrics=metrics, stores=stores
    )
    # Settlement's decisions only: the game feed moves no money (an entry settlement refuses costs nothing).
    rt.add_consumer(ROUNDS_CONSUMER, [SETTLEMENT_ROUNDS.name], batch_handler=RoundEventsHandler(rounds))
    settle = SettlePayout(ledger, metrics, stores=stores, source=source)
    compliance = ApplyComplianceEvents(ledger, source, metrics, stores=stores)
    rt.add_consumer(
        PAYOUTS_CONSUMER, [PAYOUT_EVENTS.name], batch_handler=PayoutEventsHandler(settle, compliance=compliance)
    )
    checkout = checkout_provider(settings, rt.sessions)
    providers = CheckoutProviders(default=checkout.name, providers={checkout.name: checkout})
    money = TopUpMoney(ledger, source, metrics, stores=stores)
    payments = ApplyPaymentEvents(money, metrics, stores=stores)
    rt.add_consumer(PAYMENTS_CONSUMER, [WEBHOOK_PROVIDER_EVENTS.name], batch_handler=PaymentEventsHandler(payments))
    rt.produces([REWARDS_EVENTS.name, PAYOUT_REQUESTS.name, AUDIT.name])
    queries = RewardsQueries(ledger, stores)
    book, corrections = PgLedgerBook(), PgLedgerCorrections()
    sandbox = checkout if isinstance(checkout, SandboxCheckout) and settings.prizeflow_profile is Profile.DEV else None
    api = RewardsApi(
        sessions=rt.sessions,
        ledger=ledger,
        source=source,
        create_campaign=CreateCampaign(source, stores=stores),
        fund_campaign=FundCampaign(ledger, source, metrics, stores=stores),
        change_status=ChangeCampaignStatus(source, stores=stores),
        rounds=rounds,
        submit_claim=SubmitClaim(ledger, claim_policy(settings), source, metrics, stores=stores),
        review=ReviewHold(ledger, source, metrics, stores=stores),
        top_up=TopUp(ledger, source, metrics, stores=stores),
        metrics=metrics,
        queries=queries,
        set_risk_flag=SetRiskFlag(source, stores=stores),
        create_top_up=CreateTopUpSession(providers, top_up_limits(settings), metrics, stores=stores),
        verify_top_up=VerifyTopUpSession(money, providers, stores=stores),
        sandbox=sandbox,
        close_campaign=CloseCampaign(ledger, source, metrics, stores=stores),
        propose_correction=ProposeCorrection(book, corrections, source, stores=stores),
        decide_correction=DecideCorrection(ledger, book, corrections, source, metrics, stores=stores),
        ledger_reads=LedgerReads(book, corrections),
        exports=ExportLedger(PgLedgerExportReader(rt.sessions)),
    )
    refresher = MetricsRefresher(rt.sessions, queries, PgClaimRepository(), metrics, settings.rewards_metrics_refresh_s)
    app = rt.http_app(
        [router(sandbox=sandbox is not None)],
        dependencies={"api": Provide(lambda: api, sync_to_thread=False)},
        timeline=[RewardsTimeline(SessionTransactions(rt.sessions), book, PgFlowQueries())],
    )
    app.on_startup.append(refresher.start)
    app.on_shutdown.insert(0, refresher.stop)
    app.on_shutdown.insert(0, api.claim_intake.stop)  # the requests waiting on a commit get their answer
    if isinstance(checkout, StripeCheckout):
        app.on_shutdown.append(checkout.aclose)
    return app


# The use cases on PostgreSQL without naming their stores: for integration tests and tools that drive one use
# case in a transaction of their own (the service itself is wired by `build`).
@dataclass
class PgSubmitClaim(SubmitClaim):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgSettlePayout(SettlePayout):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgApplyComplianceEvents(ApplyComplianceEvents):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgCreateCampaign(CreateCampaign):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgFundCampaign(FundCampaign):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgRoundMoney(RoundMoney):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)


@dataclass
class PgTopUpMoney(TopUpMoney):
    stores: Stores = field(default_factory=pg_stores, kw_only=True)
