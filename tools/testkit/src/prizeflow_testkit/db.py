"""PostgreSQL from a test: one query on a short-lived connection (no pool left behind between event loops)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from prizeflow_runtime.db import asyncpg_dsn


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@asynccontextmanager
async def holding(database_url: str, sql: str, *args: Any) -> AsyncIterator[None]:
    """`sql` run in a transaction of a connection of the test's own, kept open (with its locks, its uncommitted
    rows) until the block ends, then rolled back: another transaction in the way of the code under test."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(sql, *args)
        try:
            yield
        finally:
            await tx.rollback()
    finally:
        await conn.close()


async def lock_waits(database_url: str, statement_like: str) -> int:
    """How many backends of the database wait on a lock while running a statement that contains `statement_like`
    (`pg_stat_activity`): what a test waits for before it lets the lock go."""
    rows = await fetch(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query ILIKE $1",
        f"%{statement_like}%",
    )
    return int(rows[0][0])


__all__ = ["fetch", "holding", "lock_waits"]
