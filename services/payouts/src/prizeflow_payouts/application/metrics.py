"""Payouts metrics, `prizeflow_payouts_<name>`, with bounded labels (state, provider name, code): never ids.

A source account is labelled by its configured role (`funding`, `channel-<n>`), never by its public key. The
series the alert rules read exist from start-up at 0 for every configured provider (`create(providers=...)`), so
a first error or duplicate shows in `increase()`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_payouts.application.ports import STUCK_KINDS
from prizeflow_runtime.metrics import LATENCY_BUCKETS, metric_name

# `outcome` of `webhooks`: what became of a provider event (ApplyProviderEvents).
WEBHOOK_OUTCOMES = ("applied", "duplicate", "stale", "no_status", "sync_requested", "checking", "unverified")
# `outcome` of `disagreement_checks`: what reading the provider's current status concluded.
CHECK_OUTCOMES = ("stale", "contradiction", "ask_again")
# `kind` and `outcome` of `attempts`: a provider call, and the status it answered (or `error`).
ATTEMPT_KINDS = ("create", "sync")
ATTEMPT_OUTCOMES = (*(s.value for s in ProviderPayoutStatus), "error")
# `source` of the duplicate counters: where the payout request came from.
REQUEST_SOURCES = ("kafka",)

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
    source_sequence: Gauge
    source_advanced: Gauge
    oldest_waiting: Gauge
    provider_balance: Gauge
    provider_balance_low: Gauge
    contradictions: Counter
    contradictions_open: Gauge
    disagreement_checks: Counter

    @classmethod
    def create(
        cls,
        registry: CollectorRegistry,
        service: str = "payouts",
        *,
        providers: Iterable[str] = (),
        webhook_providers: Iterable[str] = (),
    ) -> PayoutMetrics:
        """`providers`: the configured providers' names; `webhook_providers`: the provider types whose events
        arrive through the webhook ingress (the `provider` label of `webhooks`)."""

        def n(name: str) -> str:
            return metric_name(service, name)

        m = cls(
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
            stuck=Gauge(
                n("stuck"),
                "Payouts waiting on recovery or on an operator, by kind (stale_leases, unconfirmed, unknown_outcome: "
                "in doubt past the rail's operator threshold) and provider",
                ["kind", "provider"],
                registry=registry,
            ),
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
            source_sequence=Gauge(
                n("source_sequence"),
                "Last sequence number of a rail's source account consumed by a transaction that landed (0: none)",
                ["provider", "account"],
                registry=registry,
            ),
            source_advanced=Gauge(
                n("source_advanced_timestamp_seconds"),
                "Unix time a rail's source account last had a transaction land (0: never)",
                ["provider", "account"],
                registry=registry,
            ),
            oldest_waiting=Gauge(
                n("oldest_waiting_seconds"),
                "Age of the oldest payout a rail holds that has not landed yet (0: none waiting)",
                ["provider"],
                registry=registry,
            ),
            provider_balance=Gauge(
                n("provider_balance"),
                "A rail's available balance in its account at the provider, in minor units (paise for INR)",
                ["provider", "currency"],
                registry=registry,
            ),
            provider_balance_low=Gauge(
                n("provider_balance_low_threshold"),
                "The operator's low-balance threshold for a rail's account at the provider, in minor units",
                ["provider", "currency"],
                registry=registry,
            ),
            contradictions=Counter(
                n("final_state_contradictions"),
                "Provider reports that contradict a payout's state, confirmed by its current status: a person decides",
                ["subject", "state", "reported"],
                registry=registry,
            ),
            contradictions_open=Gauge(
                n("final_state_contradictions_open"),
                "Contradictions between a provider and a payout's state waiting for a person, by provider",
                ["provider"],
                registry=registry,
            ),
            disagreement_checks=Counter(
                n("disagreement_checks"),
                "Provider reports that disagreed with a payout's state, checked against its current status, by outcome",
                ["provider", "outcome"],
                registry=registry,
            ),
        )
        for provider in providers:
            m.contradictions_open.labels(provider)
            for outcome in CHECK_OUTCOMES:
                m.disagreement_checks.labels(provider, outcome)
            for kind in STUCK_KINDS:
                m.stuck.labels(kind, provider)
            for code in PayoutErrorCode:
                m.provider_errors.labels(provider, code.value)
            for kind in ATTEMPT_KINDS:
                for outcome in ATTEMPT_OUTCOMES:
                    m.attempts.labels(provider, kind, outcome)
        for provider in webhook_providers:
            for outcome in WEBHOOK_OUTCOMES:
                m.webhooks.labels(provider, outcome)
        for source in REQUEST_SOURCES:
            m.duplicates_refused.labels(source)
            m.duplicates_replayed.labels(source)
        return m


__all__ = ["PayoutMetrics"]
