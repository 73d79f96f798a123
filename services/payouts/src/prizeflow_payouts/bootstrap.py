"""The one composition root: everything is built here from `PayoutsSettings`; nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from prizeflow_contracts.envelope import event_id_for, new_event
from prizeflow_contracts.events.payouts import PayoutRoute, PayoutRoutesPublished
from prizeflow_contracts.providers import ProviderType
from prizeflow_contracts.topics import (
    AUDIT,
    PAYOUT_EVENTS,
    PAYOUT_REQUESTS,
    SIGNER_REQUESTS,
    SIGNER_RESULTS,
    WEBHOOK_PROVIDER_EVENTS,
)
from prizeflow_payouts.adapters import config as provider_config
from prizeflow_payouts.adapters.compliance_gate_wiring import VerificationHook, sql_compliance_facts
from prizeflow_payouts.adapters.config import PayoutsConfig
from prizeflow_payouts.adapters.exports_pg import PgPayoutExportReader
from prizeflow_payouts.adapters.giftcard import build_giftcard
from prizeflow_payouts.adapters.providers.manual import build_manual
from prizeflow_payouts.adapters.providers.sandbox_factory import build_sandbox
from prizeflow_payouts.adapters.reconciliation_pg import SqlReconQueries, recon_transactions
from prizeflow_payouts.adapters.repository import SqlPayoutQueries, sql_transactions
from prizeflow_payouts.adapters.stellar import build_stellar
from prizeflow_payouts.adapters.stripe import build_stripe
from prizeflow_payouts.adapters.telegram import build_telegram
from prizeflow_payouts.adapters.ton import build_ton_wallet
from prizeflow_payouts.application.admin import PayoutAdmin
from prizeflow_payouts.application.compliance.gate import PayoutGate
from prizeflow_payouts.application.compliance.resume import ResumeVerifiedPayouts
from prizeflow_payouts.application.create import CreatePayouts
from prizeflow_payouts.application.exports import ExportPayouts
from prizeflow_payouts.application.metrics import ComplianceMetrics, PayoutMetrics, ReconMetrics
from prizeflow_payouts.application.ports import PayoutQueries, PayoutTransactions
from prizeflow_payouts.application.rail import Rail
from prizeflow_payouts.application.reconciliation import Reconciliation
from prizeflow_payouts.application.timeline import PayoutsTimeline
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.application.webhooks import ApplyProviderEvents
from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig
from prizeflow_payouts.bootstrap_compliance import (
    VERIFICATIONS_CONSUMER,
    ComplianceRecords,
    compose_compliance_records,
)
from prizeflow_payouts.bootstrap_sanctions import SanctionsLists, compose_sanctions
from prizeflow_payouts.domain.deny import DenyList
from prizeflow_payouts.entrypoints.compliance_http import CompliancePolicyController, VerificationController
from prizeflow_payouts.entrypoints.compliance_screening_http import ComplianceScreeningController
from prizeflow_payouts.entrypoints.http import (
    DisagreementsController,
    PayoutExportsController,
    PayoutsController,
    ProvidersController,
)
from prizeflow_payouts.entrypoints.kafka import (
    PayoutRequestsHandler,
    ProviderEventsHandler,
    SignerResultsHandler,
    VerificationEventsHandler,
)
from prizeflow_payouts.entrypoints.reconciliation_http import (
    ReconciliationController,
    ReconciliationExportController,
)
from prizeflow_payouts.expected_schema import EXPECTED_SCHEMA
from prizeflow_payouts.provider_spec import ProviderContext, ProviderFactory, ProviderSpec
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.service import ServiceRuntime

log = logging.getLogger(__name__)

REQUESTS_CONSUMER = "payouts-requests"
WEBHOOKS_CONSUMER = "payouts-webhooks"
SIGNER_RESULTS_CONSUMER = "payouts-signer-results"


@dataclass
class Payouts:
    """Everything a payouts process runs, wired."""

    settings: PayoutsSettings
    runtime: ServiceRuntime
    config: PayoutsConfig
    metrics: PayoutMetrics
    transactions: PayoutTransactions
    queries: PayoutQueries
    builder: ChangeBuilder
    create: CreatePayouts
    admin: PayoutAdmin
    webhooks: ApplyProviderEvents
    worker: PayoutWorker
    reconciliation: Reconciliation
    recon_queries: SqlReconQueries
    compliance_metrics: ComplianceMetrics | None = None
    records: ComplianceRecords | None = None  # players' verification records, the risk policy's versions
    sanctions: SanctionsLists | None = None  # the sanctions lists and their screen (bootstrap_sanctions)
    resume: ResumeVerifiedPayouts | None = None  # kyc_required holds swept again (a missed verification hook)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _recon_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _recon_task: asyncio.Task[None] | None = None
    _sweep_stop: asyncio.Event = field(default_factory=asyncio.Event)
    _sweep_task: asyncio.Task[None] | None = None
    _rescreen_task: asyncio.Task[None] | None = None

    async def start_providers(self) -> None:
        for entry in self.config.registry:
            if (engine := entry.rail.engine) is not None:
                await engine.start()

    async def close_providers(self) -> None:
        for entry in self.config.registry:
            if (engine := entry.rail.engine) is not None:
                await engine.close()

    async def publish_routes(self) -> None:
        """Tell rewards what this configuration pays (it refuses claims to anything else up front): once per
        change of configuration, not once per start (a restart or a second replica publishes nothing)."""
        routes = [
            PayoutRoute(asset=asset, destination_type=dt, provider=ptype, amounts=amounts)
            for asset, dt, ptype, amounts in self.config.registry.routes()
        ]
        digest = hashlib.sha256(json.dumps([r.model_dump(mode="json") for r in routes]).encode()).hexdigest()
        now = datetime.now(UTC)
        async with self.transactions() as repo:
            sequence = await repo.next_route_announcement(digest, now)
            if sequence is None:
                return
            announcement = PayoutRoutesPublished(sequence=sequence, routes=routes, published_at=now)
            event = new_event(
                announcement,
                source=self.settings.source,
                correlation_id="payouts-routes",  # one key: announcements stay in order on one partition
                event_id=event_id_for("payout-routes", sequence),
            )
            await repo.add_events([event])
        log.info("payout routes published", extra={"routes": len(routes), "sequence": sequence})

    async def start_worker(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.worker.run(self._stop, self.wake), name="payout-worker")

    async def start_reconciliation(self) -> None:
        self._recon_stop.clear()
        self._recon_task = asyncio.create_task(
            self.reconciliation.schedule(self._recon_stop, every_s=self.settings.payouts_recon_tick_s),
            name="reconciliation",
        )

    async def stop_reconciliation(self) -> None:
        """Stop at once, mid-run if need be: a run is resumable (its pages are staged) and its lease lapses."""
        self._recon_stop.set()
        if self._recon_task is not None:
            self._recon_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recon_task
            self._recon_task = None

    async def start_compliance_sweep(self) -> None:
        """The verification holds swept every PAYOUTS_COMPLIANCE_SWEEP_S: a hook missed (a crash between the
        verification's commit and nothing else) never leaves a verified player's payout waiting."""
        if self.resume is None:
            return
        self._sweep_stop.clear()
        self._sweep_task = asyncio.create_task(
            self.resume.run(self._sweep_stop, interval_s=self.settings.payouts_compliance_sweep_s),
            name="compliance-sweep",
        )
        if self.records is not None and self.records.rescreen is not None:
            # Verified players screened again when the lists changed, on the same tick (and at once on a load).
            self._rescreen_task = asyncio.create_task(
                self.records.rescreen.run(self._sweep_stop, interval_s=self.settings.payouts_compliance_sweep_s),
                name="kyc-rescreen",
            )

    async def stop_compliance_sweep(self) -> None:
        self._sweep_stop.set()
        for task in (self._sweep_task, self._rescreen_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweep_task = self._rescreen_task = None

    async def stop_worker(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _build_exchange(spec: ProviderSpec, context: ProviderContext) -> Rail:
    """The crypto_exchange rail, imported only when a providers file names one: ccxt loads every exchange it
    knows (~4 s of CPU), which a payouts process without that rail should not pay at every start."""
    from prizeflow_payouts.adapters.exchange import build_exchange  # deliberately lazy

    return build_exchange(spec, context)


def provider_factories() -> dict[ProviderType, ProviderFactory]:
    """The provider types this build implements, each with its factory. A type of the contract missing here
    is refused at start-up, naming the provider."""
    return {
        ProviderType.MANUAL: build_manual,
        ProviderType.SANDBOX: build_sandbox,
        ProviderType.STELLAR: build_stellar,
        ProviderType.STRIPE: build_stripe,
        # The rail (`options.rail`) decides the implementation; the factory refuses any rail but stripe.
        ProviderType.FIAT_PROVIDER: build_stripe,
        # Telegram Stars as gifts of a configured price; what the Bot API cannot do is refused (docs/adr/0009).
        ProviderType.TELEGRAM_IF_SUPPORTED: build_telegram,
        ProviderType.CRYPTO_EXCHANGE: _build_exchange,
        ProviderType.GIFT_CARD: build_giftcard,
        ProviderType.TON_WALLET: build_ton_wallet,
    }


def load_config(path: Path, context: ProviderContext, *, env: Mapping[str, str] | None = None) -> PayoutsConfig:
    """The providers file at `path`, its providers built by this build's factories."""
    return provider_config.load_config(path, context, factories=provider_factories(), env=env)


def parse_config(doc: Any, context: ProviderContext, *, env: Mapping[str, str]) -> PayoutsConfig:
    """A parsed providers file, its providers built by this build's factories."""
    return provider_config.parse_config(doc, context, env=env, factories=provider_factories())


def provider_context(settings: PayoutsSettings) -> ProviderContext:
    return ProviderContext(
        live_execution=settings.payouts_live_execution,
        database_url=settings.database_url,
        provider_timeout_s=settings.payouts_provider_timeout_ms / 1000,
        source=settings.source,
        max_attempts=settings.payouts_max_attempts,
        confirm_poll_ms=settings.payouts_confirm_poll_ms,
        confirm_max_polls=settings.payouts_confirm_max_polls,
        reconcile_interval_ms=settings.payouts_reconcile_interval_ms,
    )


def compose(settings: PayoutsSettings, *, worker_id: str | None = None) -> Payouts:
    """Build the parts. Raises `ProviderConfigError` (naming the culprit) for an unusable provider config."""
    config = load_config(settings.payouts_providers_file, provider_context(settings))
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA)
    for entry in config.registry:
        if (books := entry.rail.database) is not None:
            books.bind_database(rt.engine)
    rt.produces([PAYOUT_EVENTS.name, SIGNER_REQUESTS.name, AUDIT.name])
    metrics = PayoutMetrics.create(
        rt.registry,
        settings.service_name,
        providers=[e.name for e in config.registry],
        webhook_providers=sorted({e.provider.provider_type.value for e in config.registry if e.rail.terms.webhooks}),
    )
    transactions = sql_transactions(rt.sessions)
    builder = ChangeBuilder(
        source=settings.source,
        policy=RetryPolicy(
            base_ms=settings.payouts_retry_base_ms,
            max_ms=settings.payouts_retry_max_ms,
            confirm_poll_ms=settings.payouts_confirm_poll_ms,
            confirm_max_polls=settings.payouts_confirm_max_polls,
            reconcile_interval_ms=settings.payouts_reconcile_interval_ms,
        ),
    )
    deny = DenyList.parse(settings.payouts_deny_destinations)
    compliance_metrics = ComplianceMetrics.create(
        rt.registry, settings.service_name, sources=list(settings.sanctions_urls())
    )
    sanctions = compose_sanctions(settings, rt, compliance_metrics)
    # The compliance gate (docs/adr/0012): the risk policy and the sanctions screen, before a payout is created,
    # before it is sent, when people release a hold and when its player's verification changes.
    gate = PayoutGate(
        screen=sanctions.screen,
        facts=sql_compliance_facts,
        sources=sanctions.screen.sources,
        metrics=compliance_metrics,
        catch_up=sanctions.refresh.catch_up if sanctions.screen.sources else None,
    )
    create = CreatePayouts(
        registry=config.registry,
        approvals=config.approvals,
        max_attempts=settings.payouts_max_attempts,
        source=settings.source,
        metrics=metrics,
        deny=deny,
        gate=gate,
    )
    wake = asyncio.Event()
    admin = PayoutAdmin(
        transactions=transactions,
        registry=config.registry,
        builder=builder,
        service=settings.service_name,
        metrics=metrics,
        on_due=wake.set,
        gate=gate,
    )
    webhooks = ApplyProviderEvents(
        registry=config.registry,
        builder=builder,
        metrics=metrics,
        trusted_sources=frozenset(settings.payouts_webhook_sources),
    )
    worker = PayoutWorker(
        transactions=transactions,
        registry=config.registry,
        builder=builder,
        config=WorkerConfig(
            batch_size=settings.payouts_worker_batch_size,
            interval_s=settings.payouts_worker_interval_ms / 1000,
            idle_max_s=settings.payouts_worker_idle_max_ms / 1000,
            lease_s=settings.payouts_lease_seconds,
            provider_timeout_s=settings.payouts_provider_timeout_ms / 1000,
            concurrency=settings.payouts_worker_concurrency,
            sync_first_until=settings.payouts_sync_first_until,
        ),
        metrics=metrics,
        worker_id=worker_id,
        deny=deny,
        gate=gate,
    )
    resume = ResumeVerifiedPayouts(
        transactions=transactions, gate=gate, source=settings.source, metrics=metrics, on_due=wake.set
    )
    queries = SqlPayoutQueries(rt.sessions)
    reconciliation = Reconciliation(
        transactions=recon_transactions(rt.sessions),
        registry=config.registry,
        builder=builder,
        service=settings.service_name,
        source=settings.source,
        slack=timedelta(seconds=settings.payouts_recon_slack_s),
        window=timedelta(seconds=settings.payouts_recon_window_s),
        owner=worker.worker_id,
        ledger=settings.payouts_recon_ledger,
        metrics=ReconMetrics.create(rt.registry, settings.service_name, providers=[e.name for e in config.registry]),
    )
    records = compose_compliance_records(
        settings,
        rt,
        compliance_metrics,
        screen=sanctions.screen if sanctions.screen.sources else None,
        on_verification_changed=VerificationHook(resume),
        sources=sanctions.screen.sources,
    )
    if records.rescreen is not None:  # a list load that changed the versions starts a re-screen run at once
        sanctions.refresh.on_loaded = records.rescreen.wake
    return Payouts(
        settings,
        rt,
        config,
        metrics,
        transactions,
        queries,
        builder,
        create,
        admin,
        webhooks,
        worker,
        reconciliation,
        SqlReconQueries(rt.sessions),
        compliance_metrics=compliance_metrics,
        records=records,
        sanctions=sanctions,
        resume=resume,
        wake=wake,
    )


def build(settings: PayoutsSettings, *, parts: Payouts | None = None) -> Litestar:
    """The API process: HTTP + both consumers + outbox relay + (unless disabled) the worker."""
    p = parts or compose(settings)
    rt = p.runtime
    requests = PayoutRequestsHandler(p.create, p.wake)
    rt.add_consumer(REQUESTS_CONSUMER, [PAYOUT_REQUESTS.name], batch_handler=requests, on_refusal=requests.on_refusal)
    rt.add_consumer(WEBHOOKS_CONSUMER, [WEBHOOK_PROVIDER_EVENTS.name], batch_handler=ProviderEventsHandler(p.webhooks))
    if p.records is not None:
        rt.add_consumer(
            VERIFICATIONS_CONSUMER,
            [WEBHOOK_PROVIDER_EVENTS.name],
            batch_handler=VerificationEventsHandler(p.records.apply),
        )
    sinks = [sink for e in p.config.registry if (sink := e.rail.signer_sink) is not None]
    if sinks:
        rt.add_consumer(SIGNER_RESULTS_CONSUMER, [SIGNER_RESULTS.name], batch_handler=SignerResultsHandler(sinks))

    def const(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False, use_cache=True)

    exports = ExportPayouts(PgPayoutExportReader(rt.sessions), providers=[e.name for e in p.config.registry])
    app = rt.http_app(
        [
            PayoutsController,
            ProvidersController,
            DisagreementsController,
            PayoutExportsController,
            ReconciliationController,
            ReconciliationExportController,
            VerificationController,
            CompliancePolicyController,
            ComplianceScreeningController,
        ],
        dependencies={
            "queries": const(p.queries),
            "recon": const(p.reconciliation),
            "recon_queries": const(p.recon_queries),
            "admin": const(p.admin),
            "registry": const(p.config.registry),
            "payout_exports": const(exports),
            **{name: const(value) for name, value in (p.records.dependencies() if p.records else {}).items()},
            **{name: const(value) for name, value in (p.sanctions.dependencies() if p.sanctions else {}).items()},
        },
        timeline=[PayoutsTimeline(p.queries)],
    )
    # Each needs PostgreSQL: run (and retried) once the runtime is up, before the service reports ready.
    rt.after_start(p.start_providers)
    rt.after_start(p.publish_routes)
    if p.records is not None:
        rt.after_start(p.records.publish_policy)
    # Shutdown: the worker, then the providers (they use the runtime's pool), then the runtime.
    app.on_shutdown.insert(0, p.close_providers)
    if p.records is not None:
        app.on_shutdown.append(p.records.close)  # last: after the runtime stopped the consumers that call the vendor
    if settings.payouts_worker_enabled:
        rt.after_start(p.start_worker)
        app.on_shutdown.insert(0, p.stop_worker)
    if settings.payouts_recon_enabled:
        rt.after_start(p.start_reconciliation)
        app.on_shutdown.insert(0, p.stop_reconciliation)
    if p.sanctions is not None:
        rt.after_start(p.sanctions.start)
        app.on_shutdown.insert(0, p.sanctions.stop)
    rt.after_start(p.start_compliance_sweep)
    app.on_shutdown.insert(0, p.stop_compliance_sweep)
    app.state.payouts = p
    return app


async def run_worker(settings: PayoutsSettings, stop: asyncio.Event, *, worker_id: str | None = None) -> None:
    """The worker as its own process: worker + outbox relay, no HTTP, no consumers."""
    p = compose(settings, worker_id=worker_id)
    p.runtime.after_start(p.start_providers)
    if p.sanctions is not None:  # the worker's gate screens with this process's own loaded lists
        p.runtime.after_start(p.sanctions.start)
    # Start-up waits (retrying) while Kafka, PostgreSQL or a topic is missing; a stop request ends the wait.
    starting = asyncio.create_task(p.runtime.start(), name="worker-start")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not stop.is_set():
            starting.result()
            await p.worker.run(stop)
    finally:
        for task in (starting, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if p.sanctions is not None:
            await p.sanctions.stop()
        await p.close_providers()  # before the runtime disposes of the pool they use
        await p.runtime.stop()


__all__ = [
    "REQUESTS_CONSUMER",
    "SIGNER_RESULTS_CONSUMER",
    "WEBHOOKS_CONSUMER",
    "Payouts",
    "build",
    "compose",
    "load_config",
    "parse_config",
    "provider_factories",
    "run_worker",
]
