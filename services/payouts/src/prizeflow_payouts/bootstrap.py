"""The one composition root: everything is built here from `PayoutsSettings`; nothing at import time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_compliance.adapters.books import bind as bind_compliance
from prizeflow_compliance.bootstrap import (
    VERIFICATIONS_CONSUMER,
    ComplianceRecords,
    compose_compliance_records,
)
from prizeflow_compliance.bootstrap_sanctions import SanctionsLists, compose_sanctions
from prizeflow_compliance.entrypoints.http import CompliancePolicyController, VerificationController
from prizeflow_compliance.entrypoints.kafka import VerificationEventsHandler
from prizeflow_compliance.entrypoints.screening_http import ComplianceScreeningController
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.discovery import declared
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
from prizeflow_payouts import adapters
from prizeflow_payouts.adapters import config as provider_config
from prizeflow_payouts.adapters.books import bind
from prizeflow_payouts.adapters.config import PayoutsConfig
from prizeflow_payouts.adapters.payouts_pg import SqlPayoutRepository
from prizeflow_payouts.adapters.queries_pg import SqlPayoutQueries
from prizeflow_payouts.application.admin import PayoutAdmin
from prizeflow_payouts.application.books import Books
from prizeflow_payouts.application.create import CreatePayouts
from prizeflow_payouts.application.disagreements import CheckDisagreements
from prizeflow_payouts.application.gate import PayoutGate
from prizeflow_payouts.application.gauges import RefreshPayoutGauges
from prizeflow_payouts.application.metrics import PayoutMetrics
from prizeflow_payouts.application.out_of_band import SettleOutOfBand
from prizeflow_payouts.application.ports import PayoutQueries
from prizeflow_payouts.application.rail import SignerSink
from prizeflow_payouts.application.recon_returns import ReturnPaidPayouts
from prizeflow_payouts.application.registry import ProviderRegistry
from prizeflow_payouts.application.resume import ResumeVerifiedPayouts
from prizeflow_payouts.application.timeline import PayoutsTimeline
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.application.webhooks import ApplyProviderEvents
from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig
from prizeflow_payouts.domain.deny import DenyList
from prizeflow_payouts.entrypoints.http import DisagreementsController, PayoutsController, ProvidersController
from prizeflow_payouts.entrypoints.kafka import (
    PayoutRequestsHandler,
    ProviderEventsHandler,
    SignerResultsHandler,
    request_lane,
)
from prizeflow_payouts.expected_schema import EXPECTED_SCHEMA
from prizeflow_payouts.provider_spec import ProviderContext, ProviderFactory
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_reconciliation.bootstrap import Reconciliation, compose_reconciliation, ledger_postings
from prizeflow_reconciliation.statements import RailStatement, Statements
from prizeflow_runtime.jobs import Scheduled
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)

REQUESTS_CONSUMER = "payouts-requests"
WEBHOOKS_CONSUMER = "payouts-webhooks"
SIGNER_RESULTS_CONSUMER = "payouts-signer-results"


@dataclass
class Payouts:
    """Everything a payouts process runs, wired. Its periodic work is jobs on `runtime.jobs` (registered by
    `schedule_*`), stopped by the runtime, first at shutdown."""

    settings: PayoutsSettings
    runtime: ServiceRuntime
    config: PayoutsConfig
    metrics: PayoutMetrics
    uow: UnitOfWork[Books]
    queries: PayoutQueries
    builder: ChangeBuilder
    create: CreatePayouts
    admin: PayoutAdmin
    outcomes: SettleOutOfBand  # what a person settles outside the rails
    webhooks: ApplyProviderEvents
    worker: PayoutWorker
    gauges: RefreshPayoutGauges
    disagreements: CheckDisagreements
    reconciliation: Reconciliation
    compliance_metrics: ComplianceMetrics | None = None
    records: ComplianceRecords | None = None  # players' verification records, the risk policy's versions
    sanctions: SanctionsLists | None = None  # the sanctions lists and their screen (bootstrap_sanctions)
    resume: ResumeVerifiedPayouts | None = None  # kyc_required holds swept again (a missed verification hook)
    sending: Scheduled | None = None  # the worker's job, once scheduled (`wake_worker` ends its pause)

    def wake_worker(self) -> None:
        """A payout became due here (a request consumed, an approval made): the worker looks at once."""
        if self.sending is not None:
            self.sending.wake()

    def schedule_worker(self) -> None:
        """The worker's jobs: sending (paced by what it finds), the gauges and the disagreement checks."""
        jobs, config = self.runtime.jobs, self.worker.config
        self.sending = jobs.every(
            config.interval_s, self.worker, name="payout-worker", idle_max_s=max(config.idle_max_s, config.interval_s)
        )
        if self.settings.payouts_direct_sends:
            self.create.direct = self.worker.handed
            self.worker.handed.on_handoff = self.wake_worker
        jobs.every(config.checks_interval_s, self.disagreements, name="payout-disagreements")
        if self.metrics is not None:
            jobs.every(config.gauges_interval_s, self.gauges, name="payout-gauges")

    def schedule_reconciliation(self) -> None:
        """Cancelled at once at a stop, mid-run if need be: a run is resumable (its pages are staged) and its lease
        lapses."""
        self.reconciliation.schedule(self.runtime.jobs, every_s=self.settings.payouts_recon_tick_s)

    def schedule_compliance(self) -> None:
        """The verification holds swept every PAYOUTS_COMPLIANCE_SWEEP_S: a hook missed (a crash between the
        verification's commit and nothing else) never leaves a verified player's payout waiting. Verified players
        screened again when the lists changed, on the same tick, and at once when a load changed the versions."""
        every = self.settings.payouts_compliance_sweep_s
        if self.resume is not None:
            self.runtime.jobs.every(every, self.resume, name="compliance-sweep", cancel_on_stop=True)
        if self.records is not None and self.records.rescreen is not None:
            rescreen = self.runtime.jobs.every(every, self.records.rescreen, name="kyc-rescreen", cancel_on_stop=True)
            if self.sanctions is not None:
                self.sanctions.refresh.on_loaded = rescreen.wake

    def schedule_rails(self) -> None:
        """Each rail's own passes, on the process's one scheduler: started once the process is up (after
        `start_providers`, a start-up hook), stopped with every other job, before `close_providers`."""
        for entry in self.config.registry:
            if (passes := entry.rail.passes) is not None:
                passes.schedule(self.runtime.jobs)

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
        async with self.uow() as books:
            sequence = await books.payouts.next_route_announcement(digest, now)
            if sequence is None:
                return
            announcement = PayoutRoutesPublished(sequence=sequence, routes=routes, published_at=now)
            event = new_event(
                announcement,
                source=self.settings.source,
                correlation_id="payouts-routes",  # one key: announcements stay in order on one partition
                event_id=event_id_for("payout-routes", sequence),
            )
            await books.payouts.add_events([event])
        log.info("payout routes published", extra={"routes": len(routes), "sequence": sequence})


def rail_statements(registry: ProviderRegistry) -> Statements:
    """What each configured rail registers with reconciliation: the statement and settler parts of its `Rail`
    (reconciliation's published `StatementReader` and `SettlesUnknownOutcome`), as it named them."""
    return Statements(
        RailStatement(
            entry.name,
            entry.type,
            reader=entry.rail.statement,
            fees_inside=entry.rail.terms.statement_fees_inside,
            settler=entry.rail.settler,
            lists_within=timedelta(seconds=entry.rail.terms.statement_lag_s),
        )
        for entry in registry
    )


def provider_factories() -> dict[ProviderType, ProviderFactory]:
    """The provider types this build implements, each with its factory: every package under `adapters/` that
    declares `RAILS` (its types, each with its factory) is a rail, found by that name; no list of rails is kept. A
    type of the contract no package implements is refused at start-up, naming the provider."""
    found: dict[ProviderType, ProviderFactory] = {}
    rails: Mapping[ProviderType, ProviderFactory]
    for rails in declared(adapters, "RAILS", packages=True):
        for provider_type, factory in rails.items():
            if provider_type in found:
                raise RuntimeError(f"two adapter packages implement provider type {provider_type}")
            found[provider_type] = factory
    return found


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


def bind_books(signer_sinks: Sequence[SignerSink] = ()) -> Callable[[AsyncSession], Books]:
    """The deployable's `bind(session) -> Books`: payouts' stores with compliance's (`Books.compliance`) and the rails
    that sign through the signer, and reconciliation's ledger postings (`Books.postings`), on one session."""
    return functools.partial(bind, compliance=bind_compliance, postings=ledger_postings, signer_sinks=signer_sinks)


def compose(settings: PayoutsSettings, *, worker_id: str | None = None) -> Payouts:
    """Build the parts. Raises `ProviderConfigError` (naming the culprit) for an unusable provider config."""
    config = load_config(settings.payouts_providers_file, provider_context(settings))
    sinks = [sink for e in config.registry if (sink := e.rail.signer_sink) is not None]
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA, bind=bind_books(sinks))
    uow: UnitOfWork[Books] = rt.uow
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
    worker_config = WorkerConfig(
        batch_size=settings.payouts_worker_batch_size,
        interval_s=settings.payouts_worker_interval_ms / 1000,
        idle_max_s=settings.payouts_worker_idle_max_ms / 1000,
        lease_s=settings.payouts_lease_seconds,
        provider_timeout_s=settings.payouts_provider_timeout_ms / 1000,
        concurrency=settings.payouts_worker_concurrency,
        sync_first_until=settings.payouts_sync_first_until,
    )
    worker = PayoutWorker(
        uow=uow,
        registry=config.registry,
        builder=builder,
        config=worker_config,
        metrics=metrics,
        worker_id=worker_id,
        deny=deny,
        gate=gate,
    )
    gauges = RefreshPayoutGauges(
        uow=uow,
        registry=config.registry,
        unconfirmed_after_s=settings.payouts_reconcile_interval_ms / 1000,
        operator_after_s=worker_config.operator_after_s,
        metrics=metrics,
        gate=gate,
        balances_every_s=settings.payouts_balances_interval_s,
    )
    disagreements = CheckDisagreements(
        uow=uow,
        calls=worker.calls,
        worker_id=worker.worker_id,
        batch_size=worker_config.batch_size,
        lease_s=worker_config.lease_s,
        metrics=metrics,
    )
    due = _WakeWorker()
    decisions: dict[str, Any] = {
        "uow": uow,
        "registry": config.registry,
        "builder": builder,
        "service": settings.service_name,
        "metrics": metrics,
        "on_due": due,
    }
    admin = PayoutAdmin(**decisions, gate=gate)
    outcomes = SettleOutOfBand(**decisions)
    webhooks = ApplyProviderEvents(
        registry=config.registry,
        builder=builder,
        metrics=metrics,
        trusted_sources=frozenset(settings.payouts_webhook_sources),
    )
    resume = ResumeVerifiedPayouts(uow=uow, gate=gate, source=settings.source, metrics=metrics, on_due=due)
    queries = SqlPayoutQueries(rt.sessions)
    reconciliation = compose_reconciliation(
        sessions=rt.sessions,
        statements=rail_statements(config.registry),
        returns=lambda session: ReturnPaidPayouts(SqlPayoutRepository(session), builder),
        registry=rt.registry,
        service=settings.service_name,
        source=settings.source,
        owner=worker.worker_id,
        slack=timedelta(seconds=settings.payouts_recon_slack_s),
        window=timedelta(seconds=settings.payouts_recon_window_s),
        ledger=settings.payouts_recon_ledger,
    )
    records = compose_compliance_records(
        settings,
        rt,
        compliance_metrics,
        uow,
        screen=sanctions.screen if sanctions.screen.sources else None,
        on_verification_changed=resume.on_verification_changed,
        sources=sanctions.screen.sources,
    )
    parts = Payouts(
        settings,
        rt,
        config,
        metrics,
        uow,
        queries,
        builder,
        create,
        admin,
        outcomes,
        webhooks,
        worker,
        gauges,
        disagreements,
        reconciliation,
        compliance_metrics=compliance_metrics,
        records=records,
        sanctions=sanctions,
        resume=resume,
    )
    due.parts = parts
    return parts


class _WakeWorker:
    """`on_due` of the use cases built before the worker's job exists: wakes it once scheduled."""

    parts: Payouts | None = None

    def __call__(self) -> None:
        if self.parts is not None:
            self.parts.wake_worker()


def build(settings: PayoutsSettings, *, parts: Payouts | None = None) -> Litestar:
    """The API process: HTTP + the consumers + outbox relay + (unless disabled) the worker's jobs."""
    p = parts or compose(settings)
    rt = p.runtime
    requests = PayoutRequestsHandler(p.create, on_due=p.wake_worker)
    # Lanes (`CONSUMER_LANES`) by player (`request_lane`): a request's rows are its claim's and its player's window
    # sums, which the gate serialises per player; two lanes never hold one player's requests, so they wait on each
    # other only for a destination both lanes' requests name (the gate serialises destinations too).
    rt.add_consumer(
        REQUESTS_CONSUMER,
        [PAYOUT_REQUESTS.name],
        batch_handler=requests,
        on_refusal=requests.on_refusal,
        partition_lanes=True,
        lane_key=request_lane,
    )
    rt.add_consumer(WEBHOOKS_CONSUMER, [WEBHOOK_PROVIDER_EVENTS.name], batch_handler=ProviderEventsHandler(p.webhooks))
    if p.records is not None:
        rt.add_consumer(
            VERIFICATIONS_CONSUMER,
            [WEBHOOK_PROVIDER_EVENTS.name],
            batch_handler=VerificationEventsHandler(p.records.apply),
        )
    if any(e.rail.signer_sink is not None for e in p.config.registry):
        rt.add_consumer(SIGNER_RESULTS_CONSUMER, [SIGNER_RESULTS.name], batch_handler=SignerResultsHandler())

    def const(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False, use_cache=True)

    app = rt.http_app(
        [
            PayoutsController,
            ProvidersController,
            DisagreementsController,
            *p.reconciliation.controllers,
            VerificationController,
            CompliancePolicyController,
            ComplianceScreeningController,
        ],
        dependencies={
            "queries": const(p.queries),
            "admin": const(p.admin),
            "outcomes": const(p.outcomes),
            "registry": const(p.config.registry),
            **{name: const(value) for name, value in p.reconciliation.dependencies().items()},
            **{name: const(value) for name, value in (p.records.dependencies() if p.records else {}).items()},
            **{name: const(value) for name, value in (p.sanctions.dependencies() if p.sanctions else {}).items()},
        },
        timeline=[PayoutsTimeline(p.queries)],
    )
    # Each needs PostgreSQL: run (and retried) once the runtime is up, before the service reports ready.
    rt.after_start(p.start_providers)
    p.schedule_rails()
    rt.after_start(p.publish_routes)
    if p.records is not None:
        rt.after_start(p.records.publish_policy)
    # The periodic work: jobs the runtime starts once it is up (after the start-up hooks).
    if p.sanctions is not None:
        p.sanctions.schedule(rt.jobs)
    if settings.payouts_worker_enabled:
        p.schedule_worker()
    if settings.payouts_recon_enabled:
        p.schedule_reconciliation()
    p.schedule_compliance()
    # Shutdown, in one place: the jobs first (a pass in progress ends), then the providers (they use the runtime's
    # pool), then the runtime (consumers, relay, pool), then the KYC vendor's connections.
    app.on_shutdown.insert(0, p.close_providers)
    app.on_shutdown.insert(0, p.worker.release_handed)  # after the jobs: what the worker was handed and never sent
    app.on_shutdown.insert(0, rt.jobs.stop)
    app.on_shutdown.insert(0, p.worker.handed.stop_taking)  # first: new payouts are stored approved, for any worker
    if p.records is not None:
        app.on_shutdown.append(p.records.close)  # last: after the runtime stopped the consumers that call the vendor
    app.state.payouts = p
    return app


async def run_worker(settings: PayoutsSettings, stop: asyncio.Event, *, worker_id: str | None = None) -> None:
    """The worker as its own process: the worker's jobs + outbox relay, no HTTP, no consumers."""
    p = compose(settings, worker_id=worker_id)
    p.runtime.after_start(p.start_providers)
    p.schedule_rails()
    if p.sanctions is not None:  # the worker's gate screens with this process's own loaded lists
        p.sanctions.schedule(p.runtime.jobs)
    p.schedule_worker()
    # Start-up waits (retrying) while Kafka, PostgreSQL or a topic is missing; a stop request ends the wait. The jobs
    # start once the runtime is up and run until the stop.
    starting = asyncio.create_task(p.runtime.start(), name="worker-start")
    stopping = asyncio.create_task(stop.wait(), name="worker-stop")
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done() and not stop.is_set():
            starting.result()
            await stop.wait()
    finally:
        for task in (starting, stopping):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await p.runtime.jobs.stop()
        await p.close_providers()  # before the runtime disposes of the pool they use
        await p.runtime.stop()


__all__ = [
    "REQUESTS_CONSUMER",
    "SIGNER_RESULTS_CONSUMER",
    "WEBHOOKS_CONSUMER",
    "Payouts",
    "bind_books",
    "build",
    "compose",
    "load_config",
    "parse_config",
    "provider_factories",
    "run_worker",
]
