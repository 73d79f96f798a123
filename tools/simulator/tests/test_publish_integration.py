from __future__ import annotations

from collections import Counter

import pytest

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.errors import EventRefusal
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_runtime.broker import ensure_topics
from prizeflow_runtime.topics import TopicsNotReadyError
from prizeflow_simulator.chaos import ChaosConfig
from prizeflow_simulator.runner import Simulator
from prizeflow_testkit import read_topic

pytestmark = pytest.mark.integration


async def test_a_simulator_refuses_to_start_before_its_topic_is_provisioned(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    sim = Simulator(bootstrap=kafka_bootstrap, topic_suffix=topic_suffix)
    with pytest.raises(TopicsNotReadyError, match=f"{GAME_ROUNDS.name}{topic_suffix} missing"):
        await sim.start()


async def test_published_rounds_arrive_keyed_by_round_in_order_with_the_counted_chaos(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    suffix = topic_suffix
    await ensure_topics(kafka_bootstrap, [GAME_ROUNDS.name + suffix], with_dlq=False)
    sim = Simulator(
        bootstrap=kafka_bootstrap,
        topic_suffix=suffix,
        chaos=ChaosConfig(duplicate_rate=0.05, malformed_rate=0.1),
        seed=11,
        keep_plans=True,
    )
    await sim.start()
    try:
        stats = await sim.run(rate=0, rounds=40)
    finally:
        await sim.stop()
    records = await read_topic(kafka_bootstrap, GAME_ROUNDS.name + suffix)
    assert len(records) == stats.events
    malformed = 0
    by_round: dict[str, list[str]] = {}
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            env = decode(r.value)
        except EventRefusal:
            malformed += 1
            continue
        assert r.key == env.correlationid.encode()
        by_round.setdefault(env.correlationid, []).append(str(env.id))
    assert malformed == stats.chaos.get("malformed", 0)
    for plan in stats.plans:  # per round, Kafka kept publication order (duplicates adjacent)
        published = [str(e.id) for e in plan.events]
        seen = list(dict.fromkeys(by_round[plan.round_id]))
        assert seen == published
    assert sum(Counter(stats.rounds).values()) == 40
