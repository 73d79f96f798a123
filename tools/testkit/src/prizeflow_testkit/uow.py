"""`FakeUnitOfWork`: a service's unit of work (`prizeflow_runtime.uow.UnitOfWork`) over its in-memory stores.

`books` is the service's own `Books` dataclass holding fakes. A block that ends without an error commits (the
fakes keep what it did); one that raises rolls back: every store is put back as it was when the block began (a
deep copy of each store's attributes), as PostgreSQL would. So a use case's unit test sees what its transaction
really leaves behind, and the store contract tests can hold the fakes to the SQL stores on rollbacks too.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

B = TypeVar("B")
T = TypeVar("T")


class FakeUnitOfWork(Generic[B]):
    def __init__(self, books: B) -> None:
        if not dataclasses.is_dataclass(books):
            raise TypeError("books must be the service's Books dataclass")
        self.books = books
        self.commits = 0
        self.rollbacks = 0

    def _stores(self) -> list[Any]:
        assert dataclasses.is_dataclass(self.books)
        return [getattr(self.books, f.name) for f in dataclasses.fields(self.books)]

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[B]:
        before = [(store, copy.deepcopy(vars(store))) for store in self._stores()]
        try:
            yield self.books
        except BaseException:
            for store, state in before:
                vars(store).clear()
                vars(store).update(state)
            self.rollbacks += 1
            raise
        self.commits += 1

    async def run(self, work: Callable[[B], Awaitable[T]]) -> T:
        async with self() as books:
            return await work(books)


__all__ = ["FakeUnitOfWork"]
