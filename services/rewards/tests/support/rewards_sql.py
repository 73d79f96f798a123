"""The rewards stores on PostgreSQL, for integration tests: the unit of work bootstrap builds, on a test's engine,
and one on a transaction the test holds open."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from prizeflow_rewards.adapters.books import bind
from prizeflow_rewards.application.books import Books
from prizeflow_runtime.db import session_factory
from prizeflow_runtime.sql_uow import SqlUnitOfWork

T = TypeVar("T")


def sql_uow(engine: AsyncEngine, *, strict: bool = True) -> SqlUnitOfWork[Books]:
    """Strict by default, as the test suite runs the service (`REWARDS_LEDGER_STRICT_LOCKS=true`): every path
    declares its accounts up front."""
    return SqlUnitOfWork(session_factory(engine), functools.partial(bind, strict=strict))


class HeldOpen:
    """A unit of work on a transaction the test began and ends when it chooses: what a use case wrote and locked
    stays uncommitted meanwhile, as in the middle of a race with another transaction."""

    def __init__(self, session: AsyncSession | AsyncConnection, *, strict: bool = True) -> None:
        self.books = bind(session, strict=strict)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Books]:
        yield self.books

    async def run(self, work: Callable[[Books], Awaitable[T]]) -> T:
        return await work(self.books)


__all__ = ["HeldOpen", "bind", "sql_uow"]
