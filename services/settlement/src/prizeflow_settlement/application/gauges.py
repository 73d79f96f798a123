"""RefreshRoundsGauge: `prizeflow_settlement_rounds{state}` read from the database, a job on the scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_contracts.events.settlement import RoundState
from prizeflow_settlement.application.ports import RoundQueries
from prizeflow_settlement.metrics import SettlementMetrics


@dataclass
class RefreshRoundsGauge:
    """Every replica refreshes its own gauge (one cheap GROUP BY); a state with no round reads 0."""

    queries: RoundQueries
    metrics: SettlementMetrics

    async def tick(self) -> bool:
        counts = await self.queries.count_by_state()
        for state in RoundState:
            self.metrics.rounds.labels(state.value).set(counts.get(state.value, 0))
        return True


__all__ = ["RefreshRoundsGauge"]
