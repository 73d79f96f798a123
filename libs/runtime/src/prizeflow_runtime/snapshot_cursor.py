"""Rows of one query read in chunks from a server-side cursor, in one read-only snapshot: what a long export
reads without holding its result in memory, and with every chunk from the same moment of the books.

Each `FETCH` is a statement of its own, under the export's statement limit (the sort of an unindexed order runs in
the first one); a reader that stops early (a client gone) closes the transaction and with it the cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# An export reads a period PostgreSQL may have to sort first: well above the services' 60 s per statement.
EXPORT_STATEMENT_TIMEOUT_MS: Final = 15 * 60 * 1000
MAX_CHUNK_ROWS: Final = 100_000


@asynccontextmanager
async def snapshot(
    sessions: async_sessionmaker[AsyncSession], *, statement_timeout_ms: int = EXPORT_STATEMENT_TIMEOUT_MS
) -> AsyncIterator[AsyncSession]:
    """A REPEATABLE READ, READ ONLY transaction: every read in it sees the same committed books."""
    async with sessions() as session, session.begin():
        # The first statement of the transaction, so it holds for the snapshot. The limit is an int.
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        await session.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
        yield session


async def fetch_chunks(
    session: AsyncSession, sql: str, params: Mapping[str, Any], *, chunk_rows: int, cursor: str = "export_rows"
) -> AsyncIterator[Sequence[Row[Any]]]:
    """`sql` (a SELECT with bound `params`) through cursor `cursor` of `session`'s transaction, `chunk_rows` rows
    per FETCH, each chunk yielded as fetched; the last may be short, and no empty one is yielded."""
    if not 1 <= chunk_rows <= MAX_CHUNK_ROWS:
        raise ValueError(f"chunk_rows must be within 1..{MAX_CHUNK_ROWS}, got {chunk_rows}")
    if not cursor.isidentifier():
        raise ValueError(f"not a cursor name: {cursor!r}")
    await session.execute(text(f"DECLARE {cursor} NO SCROLL CURSOR FOR {sql}"), dict(params))
    fetch = text(f"FETCH FORWARD {int(chunk_rows)} FROM {cursor}")
    while True:
        rows = (await session.execute(fetch)).all()
        if rows:
            yield rows
        if len(rows) < chunk_rows:
            break
    await session.execute(text(f"CLOSE {cursor}"))


async def read_in_chunks(
    sessions: async_sessionmaker[AsyncSession],
    sql: str,
    params: Mapping[str, Any],
    *,
    chunk_rows: int,
    statement_timeout_ms: int = EXPORT_STATEMENT_TIMEOUT_MS,
) -> AsyncIterator[Sequence[Row[Any]]]:
    """`fetch_chunks` of `sql` in a snapshot of its own."""
    async with snapshot(sessions, statement_timeout_ms=statement_timeout_ms) as session:
        async for rows in fetch_chunks(session, sql, params, chunk_rows=chunk_rows):
            yield rows


__all__ = ["EXPORT_STATEMENT_TIMEOUT_MS", "MAX_CHUNK_ROWS", "fetch_chunks", "read_in_chunks", "snapshot"]
