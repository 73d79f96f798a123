"""Prometheus metrics of the runtime kit, named `prizeflow_<service>_<name>`.

Labels are bounded (topic, consumer, reason, outcome): never a player id or an event id. The labelled series the
alert rules read exist from start-up, at 0 (`RuntimeMetrics.declare_consumer`): a counter that first appears at 1
is invisible to `increase()`, and a rule naming a series nobody exported can never fire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_contracts.errors import REFUSAL_REASONS


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
    outbox_oldest_pending_age_seconds: Gauge
    outbox_relay_leader: Gauge
    consumer_lag_records: Gauge
    ready: Gauge

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
            outbox_oldest_pending_age_seconds=Gauge(
                n("outbox_oldest_pending_age_seconds"),
                "Age of the oldest committed outbox row not yet published (0: none), by the database's clock",
                registry=registry,
            ),
            outbox_relay_leader=Gauge(
                n("outbox_relay_leader"),
                "1 while this process's outbox relay holds the relay lock of its database, else 0",
                registry=registry,
            ),
            consumer_lag_records=Gauge(
                n("consumer_lag_records"),
                "Records of the partitions assigned to this process not yet committed by its consumer group",
                ["consumer", "topic"],
                registry=registry,
            ),
            ready=Gauge(n("ready"), "1 while every readiness check of /health/ready passes, else 0", registry=registry),
        )

    def declare_consumer(self, consumer: str, topics: Iterable[str]) -> None:
        """Export a consumer's series at 0 (lag, outcomes, dead letters by every refusal reason) before any record
        arrives. `topics` as the consumer's metrics label them (the physical names)."""
        for topic in topics:
            self.consumer_lag_records.labels(consumer, topic).set(0)
            self.duplicates.labels(consumer, topic)
            self.handler_retries.labels(consumer, topic)
            for outcome in ("applied", "duplicate", "dead_lettered", "skipped"):
                self.consumed.labels(consumer, topic, outcome)
            for reason in REFUSAL_REASONS:
                self.dead_lettered.labels(consumer, topic, reason)
