"""Reconciliation's part of the payouts composition root: `compose_reconciliation(...)` builds its unit of work, use
cases, job and HTTP controllers; `prizeflow_payouts.bootstrap` calls it and mounts what it returns. Nothing is built
at import time."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from litestar import Controller
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_reconciliation.adapters.books import bind
from prizeflow_reconciliation.adapters.exports_pg import PgPayoutExportReader
from prizeflow_reconciliation.adapters.postings_pg import SqlLedgerPostings
from prizeflow_reconciliation.adapters.queries_pg import SqlReconQueries
from prizeflow_reconciliation.application.books import ReconciliationStores
from prizeflow_reconciliation.application.exports import ExportPayouts
from prizeflow_reconciliation.application.queue import ExceptionQueue
from prizeflow_reconciliation.application.runs import ReconcileWindows, ReconGauges, ScheduledRuns
from prizeflow_reconciliation.entrypoints.exports_http import PayoutExportsController, ReconciliationExportController
from prizeflow_reconciliation.entrypoints.http import ReconciliationController
from prizeflow_reconciliation.metrics import ReconMetrics
from prizeflow_reconciliation.statements import LedgerPostings, PayoutReturns, Statements
from prizeflow_runtime.jobs import Scheduled, Scheduler
from prizeflow_runtime.sql_uow import SqlUnitOfWork

SCHEDULE_JOB: Final = "reconciliation"


@dataclass
class Reconciliation:
    """Everything reconciliation runs in a payouts process, wired."""

    runs: ReconcileWindows
    queue: ExceptionQueue
    gauges: ReconGauges
    queries: SqlReconQueries
    exports: ExportPayouts
    metrics: ReconMetrics
    statements: Statements
    # What the lifecycle's payout-requests handler records `LedgerPosted` with, on the poll's session.
    postings: Callable[[AsyncSession], LedgerPostings] = SqlLedgerPostings
    controllers: tuple[type[Controller], ...] = field(
        default=(ReconciliationController, ReconciliationExportController, PayoutExportsController)
    )

    def dependencies(self) -> dict[str, object]:
        """What the controllers are handed, by name."""
        return {
            "recon_runs": self.runs,
            "recon_queue": self.queue,
            "recon_queries": self.queries,
            "payout_exports": self.exports,
        }

    def schedule(self, jobs: Scheduler, *, every_s: float) -> Scheduled:
        """The scheduled runs, a job: every replica may run it (a run holds a lease, a completed window is not run
        again); a stop cuts a run mid-way (its pages are staged, its lease lapses)."""
        return jobs.every(every_s, ScheduledRuns(self.runs, self.gauges), name=SCHEDULE_JOB, cancel_on_stop=True)


def ledger_postings(session: AsyncSession) -> LedgerPostings:
    """Reconciliation's `LedgerPostings` on the payout lifecycle's session (its `Books`, bound by the composition
    root): what the ledger booked is kept in the transaction of the poll that consumed it."""
    return SqlLedgerPostings(session)


def compose_reconciliation(
    *,
    sessions: async_sessionmaker[AsyncSession],
    statements: Statements,
    returns: Callable[[AsyncSession], PayoutReturns],
    registry: CollectorRegistry,
    service: str,
    source: str,
    owner: str,
    slack: timedelta,
    window: timedelta,
    ledger: bool,
) -> Reconciliation:
    """`returns`: the lifecycle's `PayoutReturns` on a session (bound into reconciliation's own transaction);
    `owner`: who holds a run's lease (the process's worker id); `ledger`: compare payouts with the ledger."""
    uow: SqlUnitOfWork[ReconciliationStores] = SqlUnitOfWork(sessions, functools.partial(bind, returns=returns))
    providers = [rail.provider for rail in statements]
    metrics = ReconMetrics.create(registry, service, providers=providers)
    gauges = ReconGauges(uow, metrics)
    runs = ReconcileWindows(
        uow, statements, gauges, slack=slack, window=window, owner=owner, ledger=ledger, metrics=metrics
    )
    queue = ExceptionQueue(uow, statements, service=service, source=source, metrics=metrics)
    exports = ExportPayouts(PgPayoutExportReader(sessions), providers=providers)
    return Reconciliation(runs, queue, gauges, SqlReconQueries(sessions), exports, metrics, statements)


__all__ = ["SCHEDULE_JOB", "Reconciliation", "compose_reconciliation", "ledger_postings"]
