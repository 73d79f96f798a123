"""Publishes planned rounds to Kafka at a chosen rate and keeps score."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, Counter

from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.topics import TopicsNotReadyError, check_topics
from prizeflow_simulator.chaos import ChaosConfig, apply_chaos
from prizeflow_simulator.scenarios import RoundKind, RoundPlan, ScenarioConfig, plan_round


@dataclass
class SimulatorStats:
    rounds: Tally[str] = field(default_factory=Tally)
    events: int = 0
    chaos: dict[str, int] = field(default_factory=dict)
    plans: list[RoundPlan] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"rounds": dict(self.rounds), "events_published": self.events, "chaos": dict(self.chaos)}


class Simulator:
    def __init__(
        self,
        *,
        bootstrap: str,
        topic_suffix: str = "",
        scenario: ScenarioConfig | None = None,
        chaos: ChaosConfig | None = None,
        seed: int | None = None,
        registry: CollectorRegistry | None = None,
        keep_plans: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = GAME_ROUNDS.name + topic_suffix
        self.scenario = scenario or ScenarioConfig()
        self.chaos = chaos or ChaosConfig()
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.run_id = f"sim{uuid.uuid4().hex[:8]}"
        self.stats = SimulatorStats()
        self.keep_plans = keep_plans
        self.clock = clock
        self.started_at = clock()  # chaos bursts are timed from here (reset by start())
        self._producer: AIOKafkaProducer | None = None
        self._seq = 0
        self.recent_players: deque[str] = deque(maxlen=500)  # who may have won something lately
        registry = registry or CollectorRegistry()
        self._m_rounds = Counter(
            "prizeflow_simulator_rounds_published", "Rounds published", ["kind", "template"], registry=registry
        )
        self._m_events = Counter("prizeflow_simulator_events_published", "Records published", registry=registry)
        self._m_chaos = Counter(
            "prizeflow_simulator_chaos_injected", "Ugly cases injected", ["case"], registry=registry
        )

    async def start(self) -> None:
        """Refuses (`TopicsNotReadyError`) when the game topic is not provisioned: publishing to it would create
        it with the broker's defaults on a broker that auto-creates topics."""
        problems = await check_topics(self.bootstrap, {self.topic: 1})
        if problems:
            raise TopicsNotReadyError(problems)
        self._producer = idempotent_producer(self.bootstrap, client_id="prizeflow-simulator", linger_ms=5)
        await self._producer.start()
        self.started_at = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started_at

    def count_chaos(self, case: str, n: int = 1) -> None:
        """An ugly case injected outside publish_round (forged webhooks), in the stats and the metric."""
        self.stats.chaos[case] = self.stats.chaos.get(case, 0) + n
        self._m_chaos.labels(case).inc(n)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def publish_round(self) -> RoundPlan:
        assert self._producer is not None, "start() first"
        self._seq += 1
        plan = plan_round(self.rng, self._seq, self.scenario, run_id=self.run_id)
        before = dict(self.stats.chaos)
        records = apply_chaos(self.rng, plan.events, self.chaos.at(self.elapsed()), self.stats.chaos)
        futures = [await self._producer.send(self.topic, r.value, key=r.key, headers=r.headers) for r in records]
        await asyncio.gather(*futures)
        self.stats.rounds[plan.kind.value] += 1
        self.stats.events += len(records)
        self._m_rounds.labels(plan.kind.value, plan.template.value).inc()
        self._m_events.inc(len(records))
        for case, n in self.stats.chaos.items():
            if n > before.get(case, 0):
                self._m_chaos.labels(case).inc(n - before.get(case, 0))
        if self.keep_plans:
            self.stats.plans.append(plan)
        if plan.kind is not RoundKind.VOIDED:
            self.recent_players.extend(plan.players)
        return plan

    async def run(self, *, rate: float, rounds: int | None = None, seconds: float | None = None) -> SimulatorStats:
        """Publish `rounds` rounds (or for `seconds`) at `rate` rounds per second; 0 = as fast as possible."""
        started = time.monotonic()
        n = 0
        while (rounds is None or n < rounds) and (seconds is None or time.monotonic() - started < seconds):
            await self.publish_round()
            n += 1
            if rate > 0 and (delay := started + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(delay)
        return self.stats
