"""`SqlUnitOfWork`: the unit of work on a SQLAlchemy session factory (`prizeflow_runtime.uow`).

`bind(session) -> Books` is the service's own (its `adapters/books.py`): it builds every store of the service on the
one session. The session is begun here and ended here; nothing else in a service opens one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from prizeflow_runtime.uow import ContentionRetry, run_contended

B = TypeVar("B")
T = TypeVar("T")

Bind = Callable[[AsyncSession], B]


class SqlUnitOfWork(Generic[B]):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bind: Callable[[AsyncSession], B],
        *,
        retry: ContentionRetry | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.bind = bind
        self.retry = retry or ContentionRetry()
        self.on_retry = on_retry  # told "retried" / "gave_up": a metric

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[B]:
        async with self.sessions() as session, session.begin():
            yield self.bind(session)

    async def run(self, work: Callable[[B], Awaitable[T]]) -> T:
        async def attempt() -> T:
            async with self() as books:
                return await work(books)

        return await run_contended(attempt, policy=self.retry, on_retry=self.on_retry)


def unit_of_work(engine: AsyncEngine, bind: Callable[[AsyncSession], B]) -> SqlUnitOfWork[B]:
    """A unit of work on `engine` for stores other than the service's `Books`: a rail's own tables (its books, bound
    by its own `bind`), on the pool the bootstrap hands it. The same transactions, retries and outages as `rt.uow`."""
    return SqlUnitOfWork(async_sessionmaker(engine, expire_on_commit=False), bind)


__all__ = ["Bind", "SqlUnitOfWork", "unit_of_work"]
