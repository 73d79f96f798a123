"""The composition root: everything the settlement process runs, built from its settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from litestar import Litestar
from litestar.di import Provide

from prizeflow_contracts.events.settlement import RoundState
from prizeflow_contracts.topics import AUDIT, GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_settlement.adapters.sql import SpecCache, SqlRoundQueries, sql_store_factory
from prizeflow_settlement.application.admin import ResolveRound, VoidRound
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents
from prizeflow_settlement.application.ports import RoundQueries
from prizeflow_settlement.application.timeline import SettlementTimeline
from prizeflow_settlement.entrypoints.http import RoundsController
from prizeflow_settlement.entrypoints.kafka import CONSUMER_NAME, RoundEventsHandler
from prizeflow_settlement.expected_schema import EXPECTED_SCHEMA
from prizeflow_settlement.metrics import SettlementMetrics
from prizeflow_settlement.settings import SettlementSettings

log = logging.getLogger(__name__)


@dataclass
class RoundsGauge:
    """Refreshes `prizeflow_settlement_rounds{state}` from the database on an interval."""

    queries: RoundQueries
    metrics: SettlementMetrics
    interval_s: float
    _task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        counts = await self.queries.count_by_state()
        for state in RoundState:
            self.metrics.rounds.labels(state.value).set(counts.get(state.value, 0))

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("rounds gauge refresh failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="rounds-gauge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def build(settings: SettlementSettings) -> Litestar:
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA)
    metrics = SettlementMetrics.create(rt.registry, settings.service_name)
    specs = SpecCache(settings.spec_cache_rounds)
    stores = sql_store_factory(rt.sessions, specs)
    queries = SqlRoundQueries(rt.sessions)
    apply = ApplyRoundEvents(source=settings.source, metrics=metrics)
    # Game events are keyed by round (the correlation id): partitions never share a round, so a poll may be
    # applied as concurrent transactions, one per lane of partitions.
    rt.add_consumer(
        CONSUMER_NAME, [GAME_ROUNDS.name], batch_handler=RoundEventsHandler(apply, specs), partition_lanes=True
    )
    rt.produces([SETTLEMENT_ROUNDS.name, AUDIT.name])
    resolve = ResolveRound(stores=stores, source=settings.source, service=settings.service_name, metrics=metrics)
    void = VoidRound(stores=stores, source=settings.source, service=settings.service_name, metrics=metrics)
    gauge = RoundsGauge(queries, metrics, settings.rounds_gauge_interval_s)
    app = rt.http_app(
        [RoundsController],
        dependencies={
            "queries": Provide(lambda: queries, sync_to_thread=False),
            "resolve_round": Provide(lambda: resolve, sync_to_thread=False),
            "void_round": Provide(lambda: void, sync_to_thread=False),
        },
        timeline=[SettlementTimeline(queries)],
    )
    app.on_startup.append(gauge.start)
    app.on_shutdown.insert(0, gauge.stop)
    return app


__all__ = ["RoundsGauge", "build"]
