"""Payouts metrics, `prizeflow_payouts_<name>`, with bounded labels (state, provider name, code): never ids."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_runtime.metrics import LATENCY_BUCKETS, metric_name

CONFIRM_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)


@dataclass(frozen=True)
class PayoutMetrics:
    payouts: Gauge
    transitions: Counter
    provider_errors: Counter
    attempts: Counter
    submit_seconds: Histogram
    confirm_seconds: Histogram
    queue_length: Gauge
    duplicates_refused: Counter
    duplicates_replayed: Counter
    stuck: Gauge
    webhooks: Counter
    approvals_refused: Counter
    worker_runs: Counter
    requests_refused: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str = "payouts") -> PayoutMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        return cls(
            payouts=Gauge(n("payouts"), "Payouts by state and provider", ["state", "provider"], registry=registry),
            transitions=Counter(n("transitions"), "State changes applied", ["to_state", "provider"], registry=registry),
            provider_errors=Counter(
                n("provider_errors"), "Provider errors by stable code", ["provider", "code"], registry=registry
            ),
            attempts=Counter(
                n("attempts"), "Provider calls by kind and outcome", ["provider", "kind", "outcome"], registry=registry
            ),
            submit_seconds=Histogram(
                n("submit_seconds"),
                "Provider create call latency",
                ["provider"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            confirm_seconds=Histogram(
                n("confirm_seconds"),
                "Payout created to paid",
                ["provider"],
                buckets=CONFIRM_BUCKETS,
                registry=registry,
            ),
            queue_length=Gauge(n("worker_queue_length"), "Payouts due for submission", registry=registry),
            duplicates_refused=Counter(
                n("duplicate_payouts_refused"),
                "Payout requests refused: the idempotency key or request id was used for another body",
                ["source"],
                registry=registry,
            ),
            duplicates_replayed=Counter(
                n("duplicate_payouts_replayed"),
                "Payout requests that named an existing payout (same body): the existing one was returned",
                ["source"],
                registry=registry,
            ),
            stuck=Gauge(n("stuck"), "Rows the reconciler is watching", ["kind"], registry=registry),
            webhooks=Counter(n("webhooks"), "Provider events by outcome", ["provider", "outcome"], registry=registry),
            approvals_refused=Counter(
                n("approvals_refused"), "Approval decisions refused", ["code"], registry=registry
            ),
            worker_runs=Counter(n("worker_payouts"), "Worker results", ["result"], registry=registry),
            requests_refused=Counter(
                n("requests_refused"),
                "Payout requests refused for good (PayoutRequestRefused: rewards voids the reservation), by code",
                ["code"],
                registry=registry,
            ),
        )


__all__ = ["PayoutMetrics"]
