"""One engine per provider per database: a session advisory lock, held on a connection of the service's pool.

The lock is the two-key advisory lock `(ENGINE_LOCK_SPACE, lock_id)`: 64 bits, in the two-key space PostgreSQL
keeps apart from single-bigint keys (the outbox relay's, the claim locks' `hashtextextended`), so nothing else
in the database can take it. `lock_id` is the provider's row in `stellar_engine_locks` (migration 0006): a
unique identity per provider name, never reused, so two provider names never share a lock.

The leader does all its engine work on the session that holds the lock (`uow()`: the stores of `books` on that
session's transactions), and re-checks the lock there at every tick (`still_leads()`). A leader whose session was
terminated can therefore write nothing more (its connection is gone, and with it any transaction in flight) before
another session can take the lock: two engines never act at once, and a lost connection is lost leadership.

Why no unit of work of the pool here: a session-level lock needs one long-lived connection, which no unit of work
is. The runtime's `prizeflow_runtime.session_lock.SessionLock` takes it, checks it and runs the leader's
transactions on it; this module only names the lock and keeps it, and opens no transaction itself. A lease row in
`stellar_engine_locks` renewed by short units of work was the other way: a leader cut off from the database would
keep its lease until it expired (no takeover for that long), and every engine write would need a fencing check;
the lock ends with its connection and fences each write by running it there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_payouts.adapters.stellar.books import StellarBooks, bind
from prizeflow_runtime.session_lock import SessionLock

log = logging.getLogger(__name__)

# "STEL": the first key of every Stellar engine lock (a positive int4). The second is the provider's lock_id.
ENGINE_LOCK_SPACE: Final = 0x5354_454C
INT4_MAX: Final = 2**31 - 1


def lock_key(lock_id: int) -> tuple[int, int]:
    """The advisory lock of the provider whose `stellar_engine_locks.lock_id` is `lock_id`: injective in it."""
    if not 0 < lock_id <= INT4_MAX:
        raise ValueError(f"lock_id {lock_id} is not a positive int4 identity")
    return ENGINE_LOCK_SPACE, lock_id


class NotLeaderError(Exception):
    """Engine work asked for while this process does not hold the lock."""


class EngineLeadership:
    """Election, the per-tick check and the leader's transactions. Not shared across event loops."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.key: tuple[int, int] | None = None
        self._lock: SessionLock[StellarBooks] | None = None

    @property
    def leads(self) -> bool:
        return self._lock is not None and self._lock.held

    async def ensure_key(self, books: StellarBooks) -> tuple[int, int]:
        """The provider's lock key, its `stellar_engine_locks` row made first if need be."""
        self.key = lock_key(await books.engine_locks.lock_id(self.provider))
        return self.key

    async def try_lead(self, db: AsyncEngine) -> bool:
        """Take the lock if it is free; keep the session that holds it."""
        if self.leads:
            return True
        if self.key is None:
            raise NotLeaderError(f"no lock key for provider {self.provider!r}: start the provider first")
        lock = SessionLock(db, self.key, bind)
        if not await lock.try_take():
            return False
        self._lock = lock
        log.info("stellar engine leads", extra={"provider": self.provider, "lock_key": list(self.key)})
        return True

    async def still_leads(self) -> bool:
        """At every tick: the leader's session is alive and still holds the lock; otherwise stand down now."""
        lock = self._lock
        held = lock is not None and await lock.still_held()
        if not held and lock is not None:
            log.warning("stellar engine no longer leads", extra={"provider": self.provider})
            await self.drop()
        return held

    @contextlib.asynccontextmanager
    async def uow(self) -> AsyncIterator[StellarBooks]:
        """One transaction on the leader's session, the rail's stores bound: it commits only while this process
        holds the lock."""
        lock = self._lock
        if lock is None or not lock.held:
            raise NotLeaderError(f"stellar engine {self.provider!r} does not lead")
        async with lock() as books:
            yield books

    async def drop(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            await lock.release()


__all__ = ["ENGINE_LOCK_SPACE", "EngineLeadership", "NotLeaderError", "lock_key"]
