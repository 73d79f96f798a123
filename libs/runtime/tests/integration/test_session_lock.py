"""`SessionLock` on PostgreSQL: one holder at a time, work committed on the holding connection only, and a holder
whose backend is terminated loses the lock at its next check, its work refused from then on."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_runtime.session_lock import LockNotHeldError, SessionLock

pytestmark = pytest.mark.integration

_PID = text("SELECT pg_backend_pid()")


class Pids:
    """A store that says which backend its session runs on."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def backend(self) -> int:
        return int((await self.session.execute(_PID)).scalar_one())


def _key() -> tuple[int, int]:
    return 0x7465_7374, uuid.uuid4().int % (2**31 - 1) + 1


async def _holders(engine: AsyncEngine, key: tuple[int, int]) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = CAST(:s AS oid) AND objid = CAST(:k AS oid)"
            ),
            {"s": key[0], "k": key[1]},
        )
        return [int(r[0]) for r in rows]


async def test_one_holder_its_work_on_the_holding_session_and_given_back_on_release(engine: AsyncEngine) -> None:
    key = _key()
    first, second = SessionLock(engine, key, Pids), SessionLock(engine, key, Pids)
    assert await first.try_take()
    assert not await second.try_take()
    (holder,) = await _holders(engine, key)
    for _ in range(2):  # the connection stays the lock's after each transaction
        async with first() as pids:
            assert await pids.backend() == holder
    assert await first.still_held()
    with pytest.raises(LockNotHeldError):
        async with second():
            pass
    await first.release()
    assert not first.held
    assert await second.try_take()
    await second.release()
    assert await _holders(engine, key) == []


async def test_a_terminated_holder_loses_the_lock_at_its_next_check(engine: AsyncEngine) -> None:
    key = _key()
    lock, other = SessionLock(engine, key, Pids), SessionLock(engine, key, Pids)
    assert await lock.try_take()
    (holder,) = await _holders(engine, key)
    async with engine.connect() as admin:  # waits until the backend has exited
        assert (await admin.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": holder})).scalar()
    assert not await lock.still_held()
    assert not lock.held
    with pytest.raises(LockNotHeldError):
        async with lock():
            pass
    assert await other.try_take()
    await other.release()
