"""PostgreSQL from a test: one query on a short-lived connection (no pool left behind between event loops)."""

from __future__ import annotations

from typing import Any

import asyncpg

from prizeflow_runtime.db import asyncpg_dsn


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


__all__ = ["fetch"]
