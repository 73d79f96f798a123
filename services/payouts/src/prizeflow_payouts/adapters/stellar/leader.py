"""One engine per provider per database: a session advisory lock, held on a connection of the service's pool.

The lock is the two-key advisory lock `(ENGINE_LOCK_SPACE, lock_id)`: 64 bits, in the two-key space PostgreSQL
keeps apart from single-bigint keys (the outbox relay's, the claim locks' `hashtextextended`), so nothing else
in the database can take it. `lock_id` is the provider's row in `stellar_engine_locks` (migration 0006): a
unique identity per provider name, never reused, so two provider names never share a lock.

The leader does all its engine work on the session that holds the lock (`transaction()`), and re-checks the lock
there at every tick (`still_leads()`). A leader whose session was terminated can therefore write nothing more
(its connection is gone, and with it any transaction in flight) before another session can take the lock:
two engines never act at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from prizeflow_payouts.adapters.stellar import store as q

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
    """Election, the per-tick check and the leader's session. Not shared across event loops."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.key: tuple[int, int] | None = None
        self._conn: AsyncConnection | None = None
        self._use = asyncio.Lock()  # one statement at a time on the leader's session

    @property
    def leads(self) -> bool:
        return self._conn is not None

    async def ensure_key(self, conn: AsyncConnection) -> tuple[int, int]:
        """Create the provider's lock row if needed (idempotent, race-free: insert on conflict) and read its key."""
        await conn.execute(q.ENSURE_ENGINE_LOCK, {"provider": self.provider})
        lock_id = (await conn.execute(q.ENGINE_LOCK_ID, {"provider": self.provider})).scalar_one()
        self.key = lock_key(int(lock_id))
        return self.key

    def _params(self) -> dict[str, int]:
        if self.key is None:
            raise NotLeaderError(f"no lock key for provider {self.provider!r}: start the provider first")
        space, lock_id = self.key
        return {"space": space, "lock_id": lock_id}

    async def try_lead(self, db: AsyncEngine) -> bool:
        """Take the lock if it is free; keep the session that holds it."""
        if self._conn is not None:
            return True
        conn = await db.connect()
        try:
            got = bool((await conn.execute(q.TRY_LEAD, self._params())).scalar())
            await conn.commit()
        except BaseException:
            # The lock may be held by the session although the commit failed: never give it back to the pool.
            await conn.invalidate()
            await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        self._conn = conn
        log.info("stellar engine leads", extra={"provider": self.provider, "lock_key": list(self.key or ())})
        return True

    async def still_leads(self) -> bool:
        """At every tick: the leader's session is alive and still holds the lock; otherwise stand down now."""
        if self._conn is None:
            return False
        try:
            async with self.transaction() as conn:
                held = bool((await conn.execute(q.STILL_LEADS, self._params())).scalar())
        except Exception as err:  # noqa: BLE001 - a dead session is the answer, not an error
            log.warning("stellar engine lost its session", extra={"provider": self.provider, "error": repr(err)})
            held = False
        if not held:
            log.warning("stellar engine no longer leads", extra={"provider": self.provider})
            await self.drop()
        return held

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on the leader's session: it commits only while this process holds the lock."""
        async with self._use:
            conn = self._conn
            if conn is None:
                raise NotLeaderError(f"stellar engine {self.provider!r} does not lead")
            async with conn.begin():
                yield conn

    async def drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                # A live session gives the lock back at once; a dead one is invalidated, never reused.
                await conn.invalidate()
                await conn.close()


__all__ = ["ENGINE_LOCK_SPACE", "EngineLeadership", "NotLeaderError", "lock_key"]
