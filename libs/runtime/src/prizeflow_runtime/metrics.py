"""Prometheus metrics of the runtime kit, named `prizeflow_<service>_<name>`.

Labels are bounded (topic, consumer, reason, outcome): never a player id or an event id.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def metric_name(service: str, name: str) -> str:
    return f"prizeflow_{service.replace('-', '_')}_{name}"


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class RuntimeMetrics:
    outbox_published: Counter
    outbox_pending: Gauge
    outbox_publish_seconds: Histogram
    consumed: Counter
    duplicates: Counter
    handler_retries: Counter
    dead_lettered: Counter
    handle_seconds: Histogram
    event_lag_seconds: Histogram

    @classmethod
    def create(cls, service: str, registry: CollectorRegistry) -> RuntimeMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        return cls(
            outbox_published=Counter(n("outbox_published"), "Outbox events published", ["topic"], registry=registry),
            outbox_pending=Gauge(
                n("outbox_pending"), "Outbox rows seen unpublished at the last poll", registry=registry
            ),
            outbox_publish_seconds=Histogram(
                n("outbox_publish_seconds"),
                "Time to publish one relay batch",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            consumed=Counter(
                n("events_consumed"),
                "Events handled, by outcome",
                ["consumer", "topic", "outcome"],
                registry=registry,
            ),
            duplicates=Counter(
                n("events_duplicate"),
                "Deliveries skipped by the inbox",
                ["consumer", "topic"],
                registry=registry,
            ),
            handler_retries=Counter(
                n("handler_retries"),
                "Handler attempts that failed and were retried",
                ["consumer", "topic"],
                registry=registry,
            ),
            dead_lettered=Counter(
                n("events_dead_lettered"),
                "Events sent to a DLQ, by reason",
                ["consumer", "topic", "reason"],
                registry=registry,
            ),
            handle_seconds=Histogram(
                n("handle_seconds"),
                "Time to handle one poll batch",
                ["consumer"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            event_lag_seconds=Histogram(
                n("event_lag_seconds"),
                "Event time to handled time",
                ["consumer"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
        )
