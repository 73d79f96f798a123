"""Reconciliation's metrics, `prizeflow_payouts_recon_*`, with bounded labels (provider name, kind, severity,
outcome): never an id. The series the alert rules read exist from start-up at 0 for every configured provider."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_reconciliation.domain.kinds import SEVERITY, UNMATCHED_DEBITS
from prizeflow_runtime.metrics import metric_name

# Buckets of a reconciliation run: a page of a statement is a provider round trip; an hour of a busy rail is many.
RECON_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


@dataclass(frozen=True)
class ReconMetrics:
    """Reconciliation's series (`ReconMetricsPort`): the exception queue's gauges are set from the database after
    every run and decision and at every tick of the schedule, so every replica shows the same queue."""

    exceptions_open: Gauge
    oldest_open_age: Gauge
    unmatched_debits_open: Gauge
    runs: Counter
    last_completed_at: Gauge
    run_seconds: Histogram
    providers: tuple[str, ...]

    @classmethod
    def create(
        cls, registry: CollectorRegistry, service: str = "payouts", *, providers: Iterable[str] = ()
    ) -> ReconMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        m = cls(
            exceptions_open=Gauge(
                n("recon_exceptions_open"),
                "Reconciliation exceptions not yet resolved (open or investigating), by provider, kind and severity",
                ["provider", "kind", "severity"],
                registry=registry,
            ),
            oldest_open_age=Gauge(
                n("recon_oldest_open_exception_age_seconds"),
                "Age of the oldest unresolved reconciliation exception, by provider (0: none)",
                ["provider"],
                registry=registry,
            ),
            unmatched_debits_open=Gauge(
                n("recon_unmatched_debits_open"),
                "Unresolved exceptions where money left the provider account that Prizeflow did not send",
                ["provider"],
                registry=registry,
            ),
            runs=Counter(
                n("recon_runs"), "Reconciliation runs finished, by outcome", ["provider", "outcome"], registry=registry
            ),
            last_completed_at=Gauge(
                n("recon_last_completed_timestamp_seconds"),
                "When a reconciliation run of the provider last completed (unix time; 0: never)",
                ["provider"],
                registry=registry,
            ),
            run_seconds=Histogram(
                n("recon_run_duration_seconds"),
                "How long a reconciliation run took, statement pages included",
                ["provider"],
                buckets=RECON_BUCKETS,
                registry=registry,
            ),
            providers=tuple(providers),
        )
        for provider in m.providers:
            m.oldest_open_age.labels(provider)
            m.unmatched_debits_open.labels(provider)
            m.last_completed_at.labels(provider)
            m.run_seconds.labels(provider)
            for outcome in ("completed", "failed"):
                m.runs.labels(provider, outcome)
            for kind, severity in SEVERITY.items():
                m.exceptions_open.labels(provider, kind.value, severity.value)
        return m

    def run_finished(self, provider: str, outcome: str, seconds: float, at: datetime) -> None:
        self.runs.labels(provider, outcome).inc()
        self.run_seconds.labels(provider).observe(seconds)
        if outcome == "completed":
            self.last_completed_at.labels(provider).set(at.timestamp())

    def unresolved(self, rows: Sequence[tuple[str, str, str, int, datetime]], now: datetime) -> None:
        counts = {(p, k, s): c for p, k, s, c, _ in rows}
        oldest: dict[str, datetime] = {}
        debits: dict[str, int] = {}
        for provider, kind, _, count, opened in rows:
            oldest[provider] = min(opened, oldest.get(provider, opened))
            if kind in {k.value for k in UNMATCHED_DEBITS}:
                debits[provider] = debits.get(provider, 0) + count
        providers = set(self.providers) | {p for p, *_ in rows}
        for provider in providers:
            for kind, severity in SEVERITY.items():
                self.exceptions_open.labels(provider, kind.value, severity.value).set(
                    counts.get((provider, kind.value, severity.value), 0)
                )
            age = (now - oldest[provider]).total_seconds() if provider in oldest else 0.0
            self.oldest_open_age.labels(provider).set(max(age, 0.0))
            self.unmatched_debits_open.labels(provider).set(debits.get(provider, 0))

    def last_completed(self, rows: Sequence[tuple[str, datetime]]) -> None:
        for provider, at in rows:
            self.last_completed_at.labels(provider).set(at.timestamp())


__all__ = ["RECON_BUCKETS", "ReconMetrics"]
