"""A tiny event and effect used to exercise the runtime against real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.topics import Topic

SAMPLE_TOPIC = Topic("prizeflow.sample.things.v1", "tests", ("ThingHappened",), partitions=3)


class ThingHappened(EventPayload):
    EVENT_NAME: ClassVar[str] = "ThingHappened"
    TOPIC: ClassVar[Topic] = SAMPLE_TOPIC

    thing_id: str
    amount: int
    poison: bool = False


def thing(
    thing_id: str, amount: int = 1, *, correlation_id: str = "corr-1", poison: bool = False
) -> Envelope[ThingHappened]:
    return new_event(
        ThingHappened(thing_id=thing_id, amount=amount, poison=poison),
        source="/prizeflow/tests",
        correlation_id=correlation_id,
    )


EFFECTS_DDL = (
    """CREATE TABLE IF NOT EXISTS effects (
        event_id uuid PRIMARY KEY, thing_id text NOT NULL, amount bigint NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT clock_timestamp(), applied_seq bigserial)""",
    "CREATE TABLE IF NOT EXISTS totals (name text PRIMARY KEY, amount bigint NOT NULL, applications int NOT NULL)",
    "INSERT INTO totals VALUES ('all', 0, 0) ON CONFLICT DO NOTHING",
)


async def create_effects_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for ddl in EFFECTS_DDL:
            await conn.execute(text(ddl))


async def apply_thing(session: AsyncSession, envelope: Envelope[EventPayload]) -> None:
    """The effect: a row per event plus a running total that double application would visibly inflate."""
    data = envelope.data
    assert isinstance(data, ThingHappened)
    if data.poison:
        raise RuntimeError(f"poison thing {data.thing_id} cannot be applied")
    await session.execute(
        text("INSERT INTO effects (event_id, thing_id, amount) VALUES (:id, :thing, :amount)"),
        {"id": envelope.id, "thing": data.thing_id, "amount": data.amount},
    )
    await session.execute(
        text("UPDATE totals SET amount = amount + :amount, applications = applications + 1 WHERE name = 'all'"),
        {"amount": data.amount},
    )


async def totals(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT amount, applications FROM totals WHERE name = 'all'"))).one()
    return int(row[0]), int(row[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
