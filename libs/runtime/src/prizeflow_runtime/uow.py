"""The unit of work: one transaction, the service's stores bound to it, run again whole if it loses a race.

Every service has one way to get a transaction (cosmicpython's `uow.batches`):

    async with uow() as books:            # one transaction; commits when the block ends without an error
        payout = await books.payouts.get(payout_id, for_update=True)
        ...

    result = await uow.run(work)          # the same, where `work(books)` is run again, whole, after a deadlock

`books` is the service's frozen dataclass of stores (`Books`), each bound to that one transaction by a `bind(session)`
the composition root supplies: everything a use case reads, locks, writes and stages (events through the outbox
store) commits or rolls back together. Use cases and Kafka handlers receive `books`, never a session or a connection;
only adapters know SQL. The consumer runtime hands its handlers the same `books`, bound to the poll's transaction
with the inbox rows already claimed.

A transaction that loses a deadlock (40P01) or a serialization failure (40001) was rolled back whole by PostgreSQL,
so `run` runs the work again, whole, a bounded number of times with jitter, then raises
`TransactionContendedError` (a 503 with Retry-After at the HTTP edge). `async with uow()` runs a block once: a block
cannot be run again, so a caller whose transaction may lose a race uses `run`.

This module is pure (no database client is imported): the SQL implementation is `prizeflow_runtime.sql_uow`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prizeflow_runtime.outages import is_transient_conflict
from prizeflow_runtime.retry import backoff_delay

log = logging.getLogger(__name__)

B = TypeVar("B")
B_co = TypeVar("B_co", covariant=True)
T = TypeVar("T")


class UnitOfWork(Protocol[B_co]):
    """Opens one transaction with the service's stores (`books`) bound to it."""

    def __call__(self) -> AbstractAsyncContextManager[B_co]:
        """`async with uow() as books:` — committed when the block exits without an error, else rolled back."""
        ...

    async def run(self, work: Callable[[B_co], Awaitable[T]]) -> T:
        """`work(books)` in one transaction, run again whole when it loses a deadlock or a serialization failure."""
        ...


@dataclass(frozen=True, slots=True)
class ContentionRetry:
    """Bounded: `attempts` in all, the waits between them growing from `backoff_initial_s`, with jitter."""

    attempts: int = 4
    backoff_initial_s: float = 0.02
    backoff_max_s: float = 0.4
    # What a caller that still lost is told to wait before trying again (HTTP Retry-After, seconds).
    retry_after_s: int = 1

    def delay(self, attempt: int) -> float:
        """Exponential with jitter: two transactions that deadlocked do not collide again in lockstep."""
        return backoff_delay(attempt, base=self.backoff_initial_s, cap=self.backoff_max_s)


class TransactionContendedError(Exception):
    """Still a deadlock or serialization failure after every attempt: nothing was kept, try again later."""

    def __init__(self, attempts: int, retry_after_s: int) -> None:
        super().__init__(f"the transaction lost to concurrent ones {attempts} times")
        self.attempts = attempts
        self.retry_after_s = retry_after_s


async def run_contended(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: ContentionRetry,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run `attempt` (one whole transaction, begun and ended inside it) until it does not lose to a deadlock or a
    serialization failure, at most `policy.attempts` times; any other error goes straight to the caller. `on_retry`
    is told "retried" or "gave_up" (a metric)."""
    n = 0
    while True:
        n += 1
        try:
            return await attempt()
        except Exception as err:
            if not is_transient_conflict(err):
                raise
            if n >= policy.attempts:
                if on_retry is not None:
                    on_retry("gave_up")
                log.warning("transaction lost to concurrent ones %d times; giving up: %r", n, err)
                raise TransactionContendedError(n, policy.retry_after_s) from err
            if on_retry is not None:
                on_retry("retried")
            delay = policy.delay(n)
            log.warning("transaction lost to a concurrent one (attempt %d), retrying in %.3fs: %r", n, delay, err)
            await sleep(delay)


__all__ = ["ContentionRetry", "TransactionContendedError", "UnitOfWork", "run_contended"]
