"""Entry fees charged together (`RoundMoney.entries_many`) through the consumer runtime, on real PostgreSQL: the
guarantees of charging them one by one, a poisoned entry refused alone, a replay changing nothing, and the statements
of a poll not growing with its entries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.settlement import EntryAccepted
from prizeflow_contracts.topics import SETTLEMENT_ROUNDS
from prizeflow_rewards.adapters.books import bind
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.entrypoints.kafka import RoundEventsHandler
from prizeflow_runtime.consumer import ReliableConsumer
from prizeflow_runtime.db import session_factory
from prizeflow_testkit.events import AT

pytestmark = pytest.mark.integration


def entry(round_id: str, player_id: str, amount: int, *, paid_via: str = "external") -> Envelope[EventPayload]:
    payload = EntryAccepted(
        round_id=round_id,
        entry_id=f"{round_id}-e1",
        player_id=player_id,
        fee={"asset": "USDC", "amount": amount},
        paid_via=paid_via,
        accepted_at=AT,
    )
    return new_event(payload, source="/test", correlation_id=round_id)


def records(envelopes: Sequence[Envelope[Any]], *, first_offset: int = 0) -> list[ConsumerRecord[bytes, bytes]]:
    out = []
    for offset, env in enumerate(envelopes, start=first_offset):
        value = env.encode()
        out.append(ConsumerRecord(SETTLEMENT_ROUNDS.name, 0, offset, 0, 0, b"k", value, None, len(value), 1, []))
    return out


def consumer(engine: AsyncEngine) -> ReliableConsumer:
    return ReliableConsumer(
        name="rewards-rounds",
        topics=[SETTLEMENT_ROUNDS.name],
        session_factory=session_factory(engine),
        batch_handler=RoundEventsHandler(RoundMoney("/test")),
        bind=functools.partial(bind, strict=True),
    )


async def state(engine: AsyncEngine) -> tuple[dict[str, int], list[str]]:
    """Entry fees charged (business key → amount) and the reasons of the dead letters."""
    async with engine.connect() as conn:
        fees = {
            r.business_key: int(r.amount)
            for r in await conn.execute(
                text("SELECT business_key, amount FROM ledger_transfers WHERE kind = 'entry_fee' ORDER BY seq")
            )
        }
        letters = [r.reason for r in await conn.execute(text("SELECT reason FROM dead_letters ORDER BY id"))]
    return fees, letters


async def test_a_poisoned_entry_is_refused_alone_and_a_replay_of_the_poll_changes_nothing(engine: AsyncEngine) -> None:
    good = [entry(f"r-{i}", f"p-{i}", 100 + i) for i in range(6)]
    poisoned = entry("r-broke", "broke", 100, paid_via="wallet")  # an empty wallet: refused
    poll = [*good[:3], poisoned, *good[3:]]
    rounds = consumer(engine)
    await rounds.process(records(poll))
    fees, letters = await state(engine)
    assert sorted(fees.values()) == [100 + i for i in range(6)]  # every good entry charged, once
    assert letters == ["insufficient_funds"]

    await rounds.process(records(poll))  # redelivered: the inbox knows every event
    # Re-emitted with new event ids (a settlement replay): the ledger knows every fee by its entry.
    reemitted = [new_event(e.data, source="/test", correlation_id=e.correlationid) for e in poll]
    await rounds.process(records(reemitted, first_offset=len(poll)))
    assert await state(engine) == (fees, ["insufficient_funds", "insufficient_funds"])


async def test_a_poll_of_entries_takes_as_many_statements_for_twelve_as_for_three(engine: AsyncEngine) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        rounds = consumer(engine)
        await rounds.process(records([entry(f"a-{i}", f"p-{i}", 10) for i in range(3)]))
        three = len(statements)
        statements.clear()
        await rounds.process(records([entry(f"b-{i}", f"p-{i}", 10) for i in range(12)], first_offset=3))
        twelve = len(statements)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert twelve == three
    fees, letters = await state(engine)
    assert len(fees) == 15
    assert letters == []
