"""Game events on real Kafka → settlement process → outbox and Kafka, with duplicates, crashes and poison."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_contracts.topics import GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_runtime.dead_letters import DLQ_REASON
from prizeflow_testkit import eventually, header, read_topic

from .conftest import prepare_topics, publish, round_events, settled_rounds

pytestmark = pytest.mark.integration


async def published_settlements(bootstrap: str, suffix: str) -> list[RoundSettled]:
    """Distinct RoundSettled on the settlement topic (the relay may re-publish after a crash; ids dedup)."""
    seen: dict[uuid.UUID, RoundSettled] = {}
    for record in await read_topic(bootstrap, SETTLEMENT_ROUNDS.name + suffix):
        env = decode(record.value)
        if isinstance(env.data, RoundSettled):
            seen[env.id] = env.data
    return list(seen.values())


async def test_duplicates_and_replays_yield_exactly_one_settlement(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, service_factory: object
) -> None:
    await prepare_topics(kafka_bootstrap, suffix)
    at = datetime.now(UTC)
    original = round_events("round-dup", players=4, at=at)
    replayed = round_events("round-dup", players=4, at=at)  # same facts, fresh event ids (a game server retry)
    stream = [e for e in original for _ in range(2)] + replayed + original[::-1][:2]
    await publish(kafka_bootstrap, GAME_ROUNDS.name + suffix, stream)
    svc = service_factory()  # type: ignore[operator]
    svc.start()

    await eventually(lambda: settled_rounds(engine), lambda s: len(s) >= 1, timeout=60)
    ours = await eventually(lambda: published_settlements(kafka_bootstrap, suffix), lambda s: len(s) >= 1, timeout=60)
    await asyncio.sleep(1.0)  # let any (wrong) second settlement surface before asserting there is none
    assert await settled_rounds(engine) == ["round-dup"]
    ours = await published_settlements(kafka_bootstrap, suffix)
    assert len(ours) == 1
    assert sum(a.amount for a in ours[0].allocations) + ours[0].remainder == ours[0].distributable
    dlq = await read_topic(kafka_bootstrap, GAME_ROUNDS.name + suffix + ".dlq")
    # The two reversed originals were already applied (inbox), so nothing is refused.
    assert dlq == [], [header(r, DLQ_REASON) for r in dlq]


async def test_sigkill_mid_stream_and_restart_settles_every_round_once(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, service_factory: object
) -> None:
    await prepare_topics(kafka_bootstrap, suffix)
    rounds = [f"round-kill-{i:04d}" for i in range(400)]
    await publish(kafka_bootstrap, GAME_ROUNDS.name + suffix, [e for r in rounds for e in round_events(r)])
    first = service_factory()  # type: ignore[operator]
    first.start()
    await eventually(lambda: settled_rounds(engine), lambda s: len(s) >= 20, timeout=60, interval=0.02)
    first.kill()
    partial = len(await settled_rounds(engine))
    assert first.proc is not None
    assert first.proc.returncode == -9
    assert partial < len(rounds), "the kill came too late to be mid-stream"

    second = service_factory()  # type: ignore[operator]
    second.start()
    await eventually(lambda: settled_rounds(engine), lambda s: len(s) >= len(rounds), timeout=120)
    await asyncio.sleep(1.0)
    staged = await settled_rounds(engine)
    assert sorted(staged) == sorted(rounds), f"{partial} settled before the kill"
    published = await eventually(
        lambda: published_settlements(kafka_bootstrap, suffix), lambda s: len(s) >= len(rounds), timeout=60
    )
    assert Counter(s.round_id for s in published) == Counter(rounds)
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT state, count(*) FROM rounds GROUP BY state"))
        states = {row[0]: row[1] for row in result}
    assert states == {"settled": len(rounds)}
    assert await read_topic(kafka_bootstrap, GAME_ROUNDS.name + suffix + ".dlq") == []


async def test_poison_events_go_to_the_dlq_with_their_reason_and_the_next_round_settles(
    engine: AsyncEngine, kafka_bootstrap: str, suffix: str, service_factory: object
) -> None:
    await prepare_topics(kafka_bootstrap, suffix)
    good = round_events("round-after-poison")
    orphan = round_events("round-never-opened")[-1]  # results for a round nobody opened
    illegal = round_events("round-after-poison")[-1]  # fine later, but here it is sent before the round exists
    topic = GAME_ROUNDS.name + suffix
    await publish(kafka_bootstrap, topic, [(b"round-after-poison", b"{not json"), orphan])
    await publish(kafka_bootstrap, topic, [good[0], illegal, *good[1:]])
    svc = service_factory()  # type: ignore[operator]
    svc.start()
    await eventually(lambda: settled_rounds(engine), lambda s: s == ["round-after-poison"], timeout=60)
    dlq = await eventually(
        lambda: read_topic(kafka_bootstrap, topic + ".dlq"), lambda records: len(records) >= 3, timeout=60
    )
    assert sorted(header(r, DLQ_REASON) or "" for r in dlq) == [
        "illegal_transition",
        "malformed_json",
        "unknown_aggregate",
    ]
    async with engine.connect() as conn:
        state = await conn.scalar(text("SELECT state FROM rounds WHERE round_id = 'round-after-poison'"))
    assert state == "settled"
