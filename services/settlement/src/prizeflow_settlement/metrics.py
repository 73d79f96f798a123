"""Settlement's own metrics (`prizeflow_settlement_*`); refused events by reason are the runtime's
`prizeflow_settlement_events_dead_lettered_total{reason}`."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from prizeflow_contracts.events.settlement import RoundState
from prizeflow_runtime.metrics import metric_name

SETTLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class SettlementMetrics:
    transitions: Counter
    rounds: Gauge
    settle_latency: Histogram
    disputes: Counter
    admin_actions: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, service: str = "settlement") -> SettlementMetrics:
        def n(name: str) -> str:
            return metric_name(service, name)

        rounds = Gauge(n("rounds"), "Rounds by state (refreshed from the database)", ["state"], registry=registry)
        for state in RoundState:
            rounds.labels(state.value).set(0)
        return cls(
            transitions=Counter(
                n("round_transitions"), "Round state changes applied", ["from_state", "to_state"], registry=registry
            ),
            rounds=rounds,
            settle_latency=Histogram(
                n("settle_latency_seconds"),
                "From a round's closed_at to its settlement",
                buckets=SETTLE_BUCKETS,
                registry=registry,
            ),
            disputes=Counter(n("disputes"), "Conflicting result sets that opened a dispute", registry=registry),
            admin_actions=Counter(n("admin_actions"), "Admin actions applied", ["action"], registry=registry),
        )
