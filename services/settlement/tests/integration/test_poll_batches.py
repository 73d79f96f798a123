"""A poll of game events through the consumer runtime, on real PostgreSQL: one statement per table whatever the
poll holds, a poisoned event refused alone while the rest of its poll settles, a replay changing nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.game import EntryRecorded
from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_settlement.adapters.books import bind
from prizeflow_settlement.application.apply_round_events import ApplyRoundEvents
from prizeflow_settlement.entrypoints.kafka import CONSUMER_NAME, RoundEventsHandler
from prizeflow_testkit.events import example_payload

from .conftest import round_events

pytestmark = pytest.mark.integration


def records(envelopes: Sequence[Envelope[Any]], *, first_offset: int = 0) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for offset, env in enumerate(envelopes, start=first_offset):
        value = env.encode()
        out.append(ConsumerRecord(GAME_ROUNDS.name, 0, offset, 0, 0, b"k", value, None, len(value), 1, []))
    return out


def consumer(engine: AsyncEngine) -> ReliableConsumer:
    return ReliableConsumer(
        name=CONSUMER_NAME,
        topics=[GAME_ROUNDS.name],
        session_factory=session_factory(engine),
        batch_handler=RoundEventsHandler(ApplyRoundEvents("/settlement/test")),
        bind=bind,
    )


async def counts(engine: AsyncEngine) -> dict[str, int]:
    tables = ("rounds", "round_entries", "round_results", "round_transitions", "round_allocations", "outbox")
    async with engine.connect() as conn:
        return {t: int(await conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in tables}


async def settled(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT round_id FROM rounds WHERE state = 'settled' ORDER BY round_id"))
        return [r.round_id for r in rows]


async def test_a_poll_of_eight_rounds_takes_as_many_statements_as_a_poll_of_two(engine: AsyncEngine) -> None:
    at = datetime.now(UTC)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    rounds = consumer(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        await rounds.process(records([e for i in range(2) for e in round_events(f"two-{i}", 4, at=at)]))
        two = len(statements)
        statements.clear()
        eight = [e for i in range(8) for e in round_events(f"eight-{i}", 4, at=at)]
        await rounds.process(records(eight, first_offset=100))
        assert len(statements) == two
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(await settled(engine)) == 10


async def test_a_poisoned_event_is_refused_alone_and_a_replayed_poll_changes_nothing(engine: AsyncEngine) -> None:
    at = datetime.now(UTC)
    orphan = new_event(
        example_payload(EntryRecorded, round_id="never-opened", entry_id="x-1", player_id="p0"),
        source="/game/it",
        correlation_id="never-opened",
    )
    first, second = round_events("poll-a", 3, at=at), round_events("poll-b", 3, at=at)
    poll: list[Envelope[Any]] = [*first[:3], orphan, *first[3:], *second]
    rounds = consumer(engine)
    await rounds.process(records(poll))
    assert await settled(engine) == ["poll-a", "poll-b"]
    async with engine.connect() as conn:
        letters = [r.reason for r in await conn.execute(text("SELECT reason FROM dead_letters"))]
    assert letters == ["unknown_aggregate"]
    before = await counts(engine)

    await rounds.process(records(poll))  # redelivered as it was
    # The same facts with fresh event ids (a game server's retry), in one poll.
    again = [new_event(e.data, source="/game/it", correlation_id=e.correlationid) for e in (*first, *second)]
    await rounds.process(records(again, first_offset=len(poll)))
    assert await counts(engine) == before
    assert await settled(engine) == ["poll-a", "poll-b"]
