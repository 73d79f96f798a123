"""The composition root: everything the rewards process runs, built from settings. Nothing at import time."""

from __future__ import annotations

import functools
from typing import Any

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
from prizeflow_rewards.adapters.backend_pg import SqlLostCommits
from prizeflow_rewards.adapters.books import bind
from prizeflow_rewards.adapters.checkout_sandbox import SandboxCheckout
from prizeflow_rewards.adapters.checkout_stripe import StripeCheckout
from prizeflow_rewards.adapters.exports_pg import SqlLedgerExportReader
from prizeflow_rewards.adapters.rates_oxr import OxrRatesProvider
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.campaigns import ChangeCampaignStatus, CloseCampaign, CreateCampaign, FundCampaign
from prizeflow_rewards.application.claims import (
    ApplyComplianceEvents,
    ClaimIntake,
    ClaimPolicy,
    ReviewHold,
    SettlePayout,
    SubmitClaim,
)
from prizeflow_rewards.application.corrections import DecideCorrection, LedgerReads, ProposeCorrection
from prizeflow_rewards.application.exports import ExportLedger
from prizeflow_rewards.application.fx import FxDesk, IssueQuote, QuoteMarket, ReconcileFx, WatchRates
from prizeflow_rewards.application.gauges import RefreshRewardsGauges
from prizeflow_rewards.application.held_rounds import ReleaseHeldRounds
from prizeflow_rewards.application.ports import CheckoutProvider, RatesProvider
from prizeflow_rewards.application.queries import RewardsQueries
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.application.timeline import RewardsTimeline
from prizeflow_rewards.application.topups import (
    ApplyPaymentEvents,
    CheckoutProviders,
    CompleteSandboxCheckout,
    CreateTopUpSession,
    TopUpMoney,
    VerifyTopUpSession,
)
from prizeflow_rewards.application.wallets import SetRiskFlag, TopUp
from prizeflow_rewards.domain.topups import TopUpLimits
from prizeflow_rewards.entrypoints.http import router
from prizeflow_rewards.entrypoints.kafka import PaymentEventsHandler, PayoutEventsHandler, RoundEventsHandler
from prizeflow_rewards.expected_schema import EXPECTED_SCHEMA
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_rewards.settings import RewardsSettings
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import Profile
from prizeflow_runtime.uow import UnitOfWork

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
        fx_max_move_bps=settings.rewards_fx_max_move_bps,
        clearing_shards=settings.rewards_clearing_shards,
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


def _provided(value: Any) -> Provide:
    return Provide(lambda: value, sync_to_thread=False)


def build(settings: RewardsSettings) -> Litestar:
    rt = ServiceRuntime(
        settings, schema=EXPECTED_SCHEMA, bind=functools.partial(bind, strict=settings.rewards_ledger_strict_locks)
    )
    metrics = RewardsMetrics.create(rt.registry, settings.service_name)
    for pair in settings.rewards_fx_pairs:  # each enabled pair's series from start-up (0 until a quote, a posting)
        metrics.fx_quotes.labels(pair)
        for asset in pair.split("/"):
            metrics.fx_position.labels(asset)
            metrics.fx_position_difference.labels(asset)
    rt.uow.on_retry = lambda outcome: metrics.transaction_retries.labels(outcome).inc()
    uow: UnitOfWork[Books] = rt.uow
    source = settings.source

    rounds = RoundMoney(source, pool_low_bps=settings.rewards_pool_low_bps, metrics=metrics)
    # Settlement's decisions only: the game feed moves no money (an entry settlement refuses costs nothing).
    rt.add_consumer(ROUNDS_CONSUMER, [SETTLEMENT_ROUNDS.name], batch_handler=RoundEventsHandler(rounds))
    payouts = PayoutEventsHandler(
        SettlePayout(metrics, source=source), compliance=ApplyComplianceEvents(source, metrics)
    )
    rt.add_consumer(PAYOUTS_CONSUMER, [PAYOUT_EVENTS.name], batch_handler=payouts, acts_on=payouts.acts_on)
    money = TopUpMoney(source, metrics)
    payments = PaymentEventsHandler(ApplyPaymentEvents(money, metrics))
    rt.add_consumer(PAYMENTS_CONSUMER, [WEBHOOK_PROVIDER_EVENTS.name], batch_handler=payments)
    rt.produces([REWARDS_EVENTS.name, PAYOUT_REQUESTS.name, AUDIT.name])

    checkout = checkout_provider(settings, rt.sessions)
    providers = CheckoutProviders(default=checkout.name, providers={checkout.name: checkout})
    queries = RewardsQueries(uow)
    verify = VerifyTopUpSession(uow, money, providers)
    desk = FxDesk.of(
        settings.rewards_fx_pairs,
        quote_ttl_s=settings.rewards_fx_quote_ttl_s,
        max_rate_age_s=settings.rewards_fx_max_rate_age_s,
        max_move_bps=settings.rewards_fx_max_move_bps,
    )
    rates = rates_provider(settings)
    reconcile_fx = ReconcileFx(uow, metrics)
    intake = ClaimIntake(
        uow,
        SubmitClaim(claim_policy(settings), source, metrics),
        SqlLostCommits(rt.sessions),
        metrics=metrics,
        retry_after_s=rt.uow.retry.retry_after_s,
    )
    use_cases: dict[str, Any] = {
        "queries": queries,
        "create_campaign": CreateCampaign(uow, source),
        "fund_campaign": FundCampaign(uow, source, metrics),
        "change_status": ChangeCampaignStatus(uow, source),
        "close_campaign": CloseCampaign(uow, source, metrics),
        "release_held": ReleaseHeldRounds(uow, rounds),
        "top_up": TopUp(uow, source, metrics),
        "set_risk_flag": SetRiskFlag(uow, source),
        "create_top_up": CreateTopUpSession(uow, providers, top_up_limits(settings), metrics),
        "verify_top_up": verify,
        "claim_intake": intake,
        "review_hold": ReviewHold(uow, source, metrics),
        "propose_correction": ProposeCorrection(uow, source),
        "decide_correction": DecideCorrection(uow, source, metrics),
        "ledger_reads": LedgerReads(uow),
        "exports": ExportLedger(SqlLedgerExportReader(rt.sessions)),
        "issue_quote": IssueQuote(uow, rates, desk, metrics),
        "quote_market": QuoteMarket(uow, rates, desk, metrics),
        "reconcile_fx": reconcile_fx,
    }
    # The sandbox checkout's page, served only in the dev profile with the sandbox provider.
    sandbox = isinstance(checkout, SandboxCheckout) and settings.prizeflow_profile is Profile.DEV
    if sandbox:
        assert isinstance(checkout, SandboxCheckout)
        use_cases["complete_sandbox"] = CompleteSandboxCheckout(checkout, verify, queries)
    rt.jobs.every(settings.rewards_metrics_refresh_s, RefreshRewardsGauges(uow, metrics), name="rewards-gauges")
    rt.jobs.every(settings.rewards_fx_reconcile_interval_s, reconcile_fx, name="fx-reconciliation")
    if desk.spreads:
        rt.jobs.every(settings.rewards_fx_rate_watch_s, WatchRates(rates, desk, metrics), name="fx-rates-watch")
    app = rt.http_app(
        [router(sandbox=sandbox)],
        dependencies={name: _provided(value) for name, value in use_cases.items()},
        timeline=[RewardsTimeline(uow)],
    )
    app.on_shutdown.insert(0, intake.stop)  # the requests waiting on a commit get their answer
    if isinstance(checkout, StripeCheckout):
        app.on_shutdown.append(checkout.aclose)
    if isinstance(rates, OxrRatesProvider):
        app.on_shutdown.append(rates.aclose)
    return app


def rates_provider(settings: RewardsSettings) -> RatesProvider | None:
    """Open Exchange Rates with the settings' App ID; None without one (dev only: settings refuse it elsewhere when
    a pair is enabled), and in dev without `RATES_API_URL` (the devstack's emulator: a dev stack never calls the
    real provider with a dev App ID); quotes then answer 503 `rates_unavailable`."""
    if settings.rates_app_id is None or not settings.rates_app_id.get_secret_value():
        return None
    if settings.prizeflow_profile is Profile.DEV and settings.rates_api_url is None:
        return None
    return OxrRatesProvider(
        base_url=settings.rates_base_url,
        app_id=settings.rates_app_id.get_secret_value(),
        timeout_s=settings.rates_timeout_s,
        cache_s=settings.rates_cache_s,
    )


__all__ = ["PAYMENTS_CONSUMER", "PAYOUTS_CONSUMER", "ROUNDS_CONSUMER", "build", "checkout_provider", "claim_policy"]
