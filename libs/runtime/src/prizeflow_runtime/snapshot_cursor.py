"""Rows of one query read in chunks from a server-side cursor, in one read-only snapshot: what a long export
reads without holding its result in memory, and with every chunk from the same moment of the books.

Each `FETCH` is a statement of its own, under the export's statement limit (the sort of an unindexed order runs in
the first one); a reader that stops early (a client gone) closes the transaction and with it the cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# An export reads a period PostgreSQL may have to sort first: well above the services' 60 s per statement.
EXPORT_STATEMENT_TIMEOUT_MS: Final = 15 * 60 * 1000


async def read_in_chunks(
    sessions: async_sessionmaker[AsyncSession],
    sql: str,
    params: Mapping[str, Any],
    *,
    chunk_rows: int,
    statement_timeout_ms: int = EXPORT_STATEMENT_TIMEOUT_MS,
) -> AsyncIterator[Sequence[Row[Any]]]:
    """`sql` (a SELECT with bound `params`) `chunk_rows` rows per FETCH, each chunk yielded as fetched; the last
    chunk may be short, and no empty one is yielded."""
    if not 1 <= chunk_rows <= 1_000_000:
        raise ValueError(f"chunk_rows must be within 1..1000000, got {chunk_rows}")
    async with sessions() as session, session.begin():
        # The first statement of the transaction, so it holds for the snapshot. Both values are ints.
        await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        await session.execute(text(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}"))
        await session.execute(text("DECLARE export_rows NO SCROLL CURSOR FOR " + sql), dict(params))
        fetch = text(f"FETCH FORWARD {int(chunk_rows)} FROM export_rows")
        while True:
            rows = (await session.execute(fetch)).all()
            if rows:
                yield rows
            if len(rows) < chunk_rows:
                return


__all__ = ["EXPORT_STATEMENT_TIMEOUT_MS", "read_in_chunks"]
