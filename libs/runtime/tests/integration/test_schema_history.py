"""The frozen messaging steps end exactly at the tables `prizeflow_runtime.db` declares, and an old database
walks through them with its data intact."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_runtime.db import create_engine, create_messaging_schema
from prizeflow_runtime.inbox import Delivery, claim_many
from prizeflow_runtime.schema_history import (
    messaging_0001,
    messaging_0002_outbox_delete_on_publish,
    messaging_0003_refusals,
    messaging_0004_admin_audit,
    messaging_0005_inbox_partitions,
)

pytestmark = pytest.mark.integration  # a real PostgreSQL (the conftest's pytestmark does not apply to test modules)

STEPS = (
    messaging_0001,
    messaging_0002_outbox_delete_on_publish,
    messaging_0003_refusals,
    messaging_0004_admin_audit,
    messaging_0005_inbox_partitions,
)
TABLES = "('outbox', 'inbox', 'dead_letters', 'admin_audit', 'inbox_legacy', 'inbox_legacy_sealed', 'inbox_forgotten')"

SHAPE = {
    "columns": f"""
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default,
               is_identity, identity_generation
        FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name IN {TABLES}
        ORDER BY 1, 2""",
    "constraints": f"""
        SELECT rel.relname, con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid
        WHERE rel.relname IN {TABLES} ORDER BY 1, 2""",
    "indexes": f"""
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename IN {TABLES}
        ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
}


async def shape(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    async with engine.connect() as conn:
        return {name: [tuple(row) for row in await conn.execute(text(sql))] for name, sql in SHAPE.items()}


async def run_step(engine: AsyncEngine, step: Callable[[Operations], None]) -> None:
    def apply(sync_conn: Any) -> None:
        step(Operations(MigrationContext.configure(sync_conn)))

    async with engine.begin() as conn:
        await conn.run_sync(apply)


@pytest.fixture
async def two_databases(infra: Infra) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    names = [f"test_history_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    urls = [await create_database(infra, name) for name in names]
    engines = (create_engine(urls[0], pool_size=2), create_engine(urls[1], pool_size=2))
    yield engines
    for engine in engines:
        await engine.dispose()
    for name in names:
        await drop_database(infra, name)


async def test_the_steps_end_at_the_declared_tables(two_databases: tuple[AsyncEngine, AsyncEngine]) -> None:
    stepped, live = two_databases
    for step in STEPS:
        await run_step(stepped, step.upgrade)
    await create_messaging_schema(live)
    assert await shape(stepped) == await shape(live)


async def test_every_step_downgrades_to_the_shape_before_it(two_databases: tuple[AsyncEngine, AsyncEngine]) -> None:
    engine, _ = two_databases
    shapes = [await shape(engine)]
    for step in STEPS:
        await run_step(engine, step.upgrade)
        shapes.append(await shape(engine))
    for index in reversed(range(len(STEPS))):
        await run_step(engine, STEPS[index].downgrade)
        assert await shape(engine) == shapes[index], f"downgrade of {STEPS[index].__name__}"


async def test_an_old_database_keeps_its_pending_events_through_every_step(
    two_databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """A database of the first shape: one published row (marked), one pending, one applied inbox entry."""
    engine, _ = two_databases
    await run_step(engine, messaging_0001.upgrade)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO outbox (event_id, topic, key, headers, payload, event_type, published_at) VALUES "
                "(gen_random_uuid(), 't', 'k', '{}', 'sent', 'x', now()), "
                "(gen_random_uuid(), 't', 'k', '{}', 'pending', 'x', NULL)"
            )
        )
        await conn.execute(
            text(
                'INSERT INTO inbox (consumer, event_id, topic, partition, "offset") '
                "VALUES ('c', gen_random_uuid(), 't', 0, 7)"
            )
        )
    for step in STEPS[1:]:
        await run_step(engine, step.upgrade)
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT payload FROM outbox"))).scalars().all() == [b"pending"]
        assert (await conn.execute(text("SELECT outcome, digest FROM inbox_legacy"))).all() == [("applied", None)]
        event_id = (await conn.execute(text("SELECT event_id FROM inbox_legacy"))).scalar_one()
        # The row from before the inbox was partitioned still deduplicates its event, whatever its time.
        again = Delivery(event_id, "t", 0, 7, datetime.now(UTC))
        assert (await claim_many(conn, "c", [again])).fresh == set()
        assert (await claim_many(conn, "other", [again])).fresh == {event_id}


async def test_the_partitioned_inbox_downgrades_without_losing_dedup(
    two_databases: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine, _ = two_databases
    for step in STEPS:
        await run_step(engine, step.upgrade)
    event_id = uuid.uuid4()
    async with engine.begin() as conn:
        await claim_many(conn, "c", [Delivery(event_id, "t", 0, 1, datetime.now(UTC), b"d")])
    await run_step(engine, messaging_0005_inbox_partitions.downgrade)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT consumer, event_id, digest FROM inbox"))).all()
    assert rows == [("c", event_id, b"d")]
