"""Pooled connections are pinged only after sitting idle (`ping_when_idle`, real PostgreSQL): a connection used a
moment ago is lent as it is (no BEGIN, empty statement and ROLLBACK before every transaction); a stale one is pinged
and replaced before its caller sees it; one whose socket the server closed is replaced without a ping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import asyncpg_dsn, create_engine
from prizeflow_testkit import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item for every ping of a pooled connection."""
    seen: list[int] = []
    ping: Callable[[AsyncAdapt_asyncpg_connection], None] = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        seen.append(1)
        ping(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    return seen


@pytest.fixture
async def engines(fresh_database: str) -> AsyncIterator[dict[str, AsyncEngine]]:
    made = {
        "patient": create_engine(fresh_database, pool_size=1, ping_after_idle_s=60),
        "eager": create_engine(fresh_database, pool_size=1, ping_after_idle_s=0.2),
    }
    yield made
    for engine in made.values():
        await engine.dispose()


async def backend(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def terminate(database: str, pid: int) -> None:
    admin = await asyncpg.connect(asyncpg_dsn(database))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        while await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


async def test_a_connection_used_a_moment_ago_is_lent_without_a_ping(
    engines: dict[str, AsyncEngine], pings: list[int]
) -> None:
    engine = engines["patient"]
    first = await backend(engine)
    used = [await backend(engine) for _ in range(5)]
    assert used == [first] * 5  # the pool's one connection, five times
    assert pings == []


async def test_a_connection_idle_past_the_window_is_pinged_and_one_failing_its_ping_replaced_unseen(
    engines: dict[str, AsyncEngine], pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engines["eager"]
    first = await backend(engine)
    await asyncio.sleep(0.3)
    assert await backend(engine) == first  # pinged, alive, lent
    assert len(pings) == 1
    # A peer gone without closing the socket (a proxy, a NAT, a partition: asyncpg cannot tell) fails its ping.
    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", _failing_ping(pings))
    await asyncio.sleep(0.3)
    replaced = await backend(engine)  # the ping failed: the pool recycled, a new connection, the caller saw nothing
    assert replaced != first
    assert len(pings) == 2


def _failing_ping(pings: list[int]) -> Callable[[AsyncAdapt_asyncpg_connection], None]:
    def ping(_self: AsyncAdapt_asyncpg_connection) -> None:
        pings.append(1)
        raise ConnectionResetError("no answer")

    return ping


async def test_one_the_server_closed_within_the_window_is_replaced_unseen_without_a_ping(
    engines: dict[str, AsyncEngine], pings: list[int], fresh_database: str
) -> None:
    """A restart, a failover or a terminated backend closes the socket: once asyncpg has read the close, the pool
    is recycled before the connection is lent (a round trip saved, as for any connection used a moment ago). Until
    it has read it (a moment, longer on a loaded machine: seen in `make test`), the connection is as one whose peer
    vanished: its next statement fails once and the pool is recycled then."""
    engine = engines["patient"]
    async with engine.begin() as conn:
        first = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None
    await terminate(fresh_database, first)
    await eventually(lambda: _now(raw.is_closed()), bool, timeout=10, interval=0.02)
    replaced = await backend(engine)
    assert replaced != first
    assert pings == []


async def _now(value: bool) -> bool:
    return value
