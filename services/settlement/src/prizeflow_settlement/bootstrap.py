"""The composition root: everything the settlement process runs, built from its settings."""

from __future__ import annotations

import functools

from litestar import Litestar
from litestar.di import Provide

from prizeflow_contracts.topics import AUDIT, GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.uow import UnitOfWork
from prizeflow_settlement.adapters.books import bind
from prizeflow_settlement.adapters.queries_pg import SqlRoundQueries
from prizeflow_settlement.adapters.spec_cache import SpecCache
from prizeflow_settlement.application.admin import ResolveRound, VoidRound
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents
from prizeflow_settlement.application.books import Books
from prizeflow_settlement.application.gauges import RefreshRoundsGauge
from prizeflow_settlement.application.timeline import SettlementTimeline
from prizeflow_settlement.entrypoints.http import RoundsController
from prizeflow_settlement.entrypoints.kafka import CONSUMER_NAME, RoundEventsHandler
from prizeflow_settlement.expected_schema import EXPECTED_SCHEMA
from prizeflow_settlement.metrics import SettlementMetrics
from prizeflow_settlement.settings import SettlementSettings


def build(settings: SettlementSettings) -> Litestar:
    specs = SpecCache(settings.spec_cache_rounds)
    rt = ServiceRuntime(settings, schema=EXPECTED_SCHEMA, bind=functools.partial(bind, specs=specs))
    uow: UnitOfWork[Books] = rt.uow
    metrics = SettlementMetrics.create(rt.registry, settings.service_name)
    queries = SqlRoundQueries(rt.sessions)
    apply = ApplyRoundEvents(source=settings.source, metrics=metrics)
    # Game events are keyed by round (the correlation id): partitions never share a round, so a poll may be
    # applied as concurrent transactions, one per lane of partitions.
    rt.add_consumer(CONSUMER_NAME, [GAME_ROUNDS.name], batch_handler=RoundEventsHandler(apply), partition_lanes=True)
    rt.produces([SETTLEMENT_ROUNDS.name, AUDIT.name])
    resolve = ResolveRound(uow=uow, source=settings.source, service=settings.service_name, metrics=metrics)
    void = VoidRound(uow=uow, source=settings.source, service=settings.service_name, metrics=metrics)
    rt.jobs.every(settings.rounds_gauge_interval_s, RefreshRoundsGauge(queries, metrics), name="rounds-gauge")
    return rt.http_app(
        [RoundsController],
        dependencies={
            "queries": Provide(lambda: queries, sync_to_thread=False),
            "resolve_round": Provide(lambda: resolve, sync_to_thread=False),
            "void_round": Provide(lambda: void, sync_to_thread=False),
        },
        timeline=[SettlementTimeline(queries)],
    )


__all__ = ["build"]
