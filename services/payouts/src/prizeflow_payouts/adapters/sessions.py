"""`bound_transactions`: stores bound to a transaction of their own (a context without a unit of work yet)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

T = TypeVar("T")


def bound_transactions(
    sessions: async_sessionmaker[AsyncSession], bind: Callable[[AsyncSession], T]
) -> Callable[[], AbstractAsyncContextManager[T]]:
    """An opener of stores bound to one transaction: each block gets its own session and transaction, committed on
    exit, and `bind(session)` as its store."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[T]:
        async with sessions() as session, session.begin():
            yield bind(session)

    def opener() -> AbstractAsyncContextManager[T]:
        return transaction()

    return opener


__all__ = ["bound_transactions"]
