"""A transaction that loses a deadlock (40P01) or a serialization failure (40001) is run again, whole, a few times.

PostgreSQL rolls such a transaction back entirely, so running the unit of work again is safe. The ledger takes
its locks in one global order (no deadlock between its transactions), so this is the last line of defence
(a lock the ledger does not govern, a future isolation level), never how a deadlock is meant to be handled.

A COMMIT whose connection is lost is another matter: the server may have committed it, or not. `run_committing`
says which it was the only way that cannot guess: it ends the lost connection's backend (`pg_terminate_backend`,
waiting for it to exit, unless it is gone or idle already), after which the transaction is committed or rolled back
for good, and the caller reads back what it wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_rewards.adapters.ledger_pg import is_serialization_failure
from prizeflow_runtime.db import driver_connection
from prizeflow_runtime.outages import is_outage
from prizeflow_runtime.retry import backoff_delay

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
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


async def retry_transaction(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    on_retry: Callable[[str], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Run `attempt` (one whole transaction, begun and ended inside it) until it does not lose to a deadlock or
    a serialization failure, at most `policy.attempts` times; any other error goes straight to the caller.
    `on_retry` is told "retried" or "gave_up" (a metric)."""
    n = 0
    while True:
        n += 1
        try:
            return await attempt()
        except Exception as err:
            if not is_serialization_failure(err):
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


class CommitLostError(Exception):
    """The connection was lost while the transaction committed: `outcome` is what the work returned, and whether it
    was committed is unknown until `settle_lost_commit` says."""

    def __init__(self, outcome: object, backend_pid: int) -> None:
        super().__init__("the connection was lost during COMMIT")
        self.outcome = outcome
        self.backend_pid = backend_pid


class CommitOutcomeUnknownError(Exception):
    """After a lost COMMIT, what was committed could not be read back (the database stayed out of reach): the
    caller cannot tell the client whether its request was written."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("the connection was lost while committing and the outcome could not be read back")
        self.retry_after_s = retry_after_s


async def run_committing(sessions: async_sessionmaker[AsyncSession], work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """`work` in one transaction of its own; a COMMIT lost with its connection (an outage once `work` returned)
    raises `CommitLostError` with what `work` returned and the backend that was committing it. Any other error is
    raised as is (nothing was committed)."""
    async with sessions() as session:
        done: list[tuple[T, int]] = []  # what `work` returned, and the backend committing it
        try:
            async with session.begin():
                outcome = await work(session)
                done.append((outcome, (await driver_connection(session)).get_server_pid()))
        except Exception as err:
            if done and is_outage(err):
                raise CommitLostError(*done[0]) from err
            raise
        return done[0][0]


# The lost connection's backend, unless it is gone or idle (its transaction ended): ended, and waited for (5 s).
# The service's own role may signal its own backends.
_END_BACKEND = text(
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
    "WHERE pid = :pid AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'"
)


async def end_lost_backend(sessions: async_sessionmaker[AsyncSession], backend_pid: int) -> None:
    """Make sure the transaction a lost connection was committing has ended (committed or rolled back for good):
    its backend exits, if it has not. Raises `CommitOutcomeUnknownError` if it does not within its wait."""
    async with sessions() as session, session.begin():
        ended = (await session.execute(_END_BACKEND, {"pid": backend_pid})).scalar_one_or_none()
    if ended is False:
        raise CommitOutcomeUnknownError(retry_after_s=1)


class SessionTransactions:
    """`Transactions` on a session factory: `work` in one transaction of its own (for reads: run once)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def __call__(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.sessions() as session, session.begin():
            return await work(session)


__all__ = [
    "CommitLostError",
    "CommitOutcomeUnknownError",
    "RetryPolicy",
    "SessionTransactions",
    "TransactionContendedError",
    "end_lost_backend",
    "retry_transaction",
    "run_committing",
]
