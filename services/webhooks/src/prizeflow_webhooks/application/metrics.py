"""The ingress's metrics, `prizeflow_webhooks_<name>`. Labels are bounded: a provider label is a configured
provider's name (or `unknown`), a reason or outcome one of the domain's enums; never an id."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from prizeflow_runtime.metrics import LATENCY_BUCKETS, metric_name
from prizeflow_webhooks.domain.deliveries import UNKNOWN_PROVIDER_LABEL, DeliveryOutcome, RefusalReason

BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


@dataclass(frozen=True)
class WebhooksMetrics:
    refused: Counter
    deliveries: Counter
    correlation_generated: Counter
    confirmations: Counter
    republished: Counter
    write_batch: Histogram
    write_seconds: Histogram

    @classmethod
    def create(
        cls, registry: CollectorRegistry, providers: Iterable[str] = (), service: str = "webhooks"
    ) -> WebhooksMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        m = cls(
            refused=Counter(
                n("refused"), "Requests refused, nothing stored or published", ["provider", "reason"],
                registry=registry,
            ),
            deliveries=Counter(
                n("deliveries"), "Verified deliveries by outcome (accepted, duplicate, ignored)",
                ["provider", "outcome"], registry=registry,
            ),
            correlation_generated=Counter(
                n("correlation_generated"),
                "Accepted deliveries whose provider echoed no correlation id (a new one was generated)",
                ["provider"],
                registry=registry,
            ),
            confirmations=Counter(
                n("confirmations"),
                "Events fetched back from their provider (confirmed, not_found, mismatch, unavailable)",
                ["provider", "outcome"],
                registry=registry,
            ),
            republished=Counter(
                n("republished"), "Deliveries re-published by an operator", ["provider"], registry=registry
            ),
            write_batch=Histogram(
                n("write_batch_size"), "Deliveries committed together (group commit)", buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            write_seconds=Histogram(
                n("write_seconds"), "One group commit: insert, outbox, commit", buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )  # fmt: skip
        m.refused.labels(UNKNOWN_PROVIDER_LABEL, RefusalReason.UNKNOWN_PROVIDER.value)
        for provider in providers:
            for reason in RefusalReason:
                if reason is not RefusalReason.UNKNOWN_PROVIDER:
                    m.refused.labels(provider, reason.value)
            for outcome in DeliveryOutcome:
                m.deliveries.labels(provider, outcome.value)
        return m


__all__ = ["WebhooksMetrics"]
