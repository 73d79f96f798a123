"""`SessionLock`: a session-level advisory lock held on a connection of its own, and units of work on that connection.

Some leadership must end with the leader's connection, at once: a two-key `pg_try_advisory_lock(space, key)` lives as
long as the session that took it, so its connection is kept out of the pool while the lock is held, and the leader's
work runs on that very connection (`async with lock() as books:`, one transaction with its stores bound by `bind`).
A leader whose backend was terminated then commits nothing more, since its transactions ran on the session that
is gone, before another session can take the lock. A lease row would keep a dead leader's claim until it expired.

That connection is no unit of work of the pool (`prizeflow_runtime.sql_uow`): it is opened, checked and given back
here, the one place outside `sql_uow` a session is begun for a service's stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

B = TypeVar("B")

_TAKE = text("SELECT pg_try_advisory_lock(:space, :key)")
# Still ours: this session holds the two-key advisory lock (pg_locks shows a two-key lock with objsubid 2).
_HELD = text(
    """SELECT EXISTS (SELECT 1 FROM pg_locks
                      WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND objsubid = 2
                        AND classid = CAST(:space AS oid) AND objid = CAST(:key AS oid))"""
)


class LockNotHeldError(Exception):
    """Work asked for on a lock this process does not hold (never taken, or given up meanwhile)."""


class SessionLock(Generic[B]):
    """The advisory lock `(space, key)` on `engine`, and the stores `bind` builds on its connection's transactions.
    One transaction at a time on that connection. Not shared across event loops."""

    def __init__(self, engine: AsyncEngine, key: tuple[int, int], bind: Callable[[AsyncSession], B]) -> None:
        self.engine = engine
        self.key = key
        self.bind = bind
        self._conn: AsyncConnection | None = None
        self._use = asyncio.Lock()

    @property
    def held(self) -> bool:
        return self._conn is not None

    def _params(self) -> dict[str, int]:
        space, key = self.key
        return {"space": space, "key": key}

    async def try_take(self) -> bool:
        """Take the lock if it is free; keep the connection that holds it."""
        if self._conn is not None:
            return True
        conn = await self.engine.connect()
        try:
            got = bool((await conn.execute(_TAKE, self._params())).scalar())
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
        return True

    async def still_held(self) -> bool:
        """The connection is alive and its session still holds the lock; otherwise the lock is given up now."""
        try:
            async with self._use:
                held = await self._holds()
        except Exception as err:  # noqa: BLE001 - a dead session is the answer, not an error
            log.warning("advisory lock session lost", extra={"lock_key": list(self.key), "error": repr(err)})
            held = False
        if not held:
            await self.release()
        return held

    async def _holds(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        async with conn.begin():
            return bool((await conn.execute(_HELD, self._params())).scalar())

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[B]:
        """One transaction on the lock's connection, its stores bound: it commits only while the lock is held."""
        async with self._use:
            conn = self._conn
            if conn is None:
                raise LockNotHeldError(f"advisory lock {self.key} is not held")
            async with AsyncSession(bind=conn, expire_on_commit=False) as session, session.begin():
                yield self.bind(session)

    async def release(self) -> None:
        """Give the lock up: a live session frees it at once; a dead one is invalidated, never reused."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
                await conn.close()


__all__ = ["LockNotHeldError", "SessionLock"]
