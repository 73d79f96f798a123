"""Every connection a service opens carries its DATABASE_*_TIMEOUT_MS limits (real PostgreSQL): a statement that
runs past statement_timeout is cancelled, a lock wait past lock_timeout fails fast, a transaction left idle is
ended; the outbox relay's connection has the same limits, its VACUUM none but the lock wait. None of them ends a
commit's wait for a synchronous standby (a cluster of its own, waiting for a standby that never comes)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from typing import cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_devstack.archive import Cluster, drill_workdir
from prizeflow_devstack.ports import pick_free_port
from prizeflow_runtime.db import asyncpg_dsn, create_engine
from prizeflow_runtime.outbox import OutboxRelay
from prizeflow_runtime.settings import DatabaseTimeouts

pytestmark = pytest.mark.integration

LIMITS = DatabaseTimeouts.model_construct(
    statement_timeout_ms=800, lock_timeout_ms=300, idle_in_transaction_timeout_ms=500
)


def sqlstate(err: BaseException) -> str | None:
    return getattr(getattr(err, "orig", None), "sqlstate", None) or getattr(err, "sqlstate", None)


@pytest.fixture
async def limited(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=2, timeouts=LIMITS)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE wallets (id int PRIMARY KEY, balance bigint NOT NULL)"))
        await conn.execute(text("INSERT INTO wallets VALUES (1, 100)"))
    yield engine
    await engine.dispose()


async def test_the_settings_reach_every_pooled_connection(limited: AsyncEngine) -> None:
    async with limited.connect() as conn:
        shown = [
            (await conn.execute(text(f"SHOW {name}"))).scalar_one()
            for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
        ]
    assert shown == ["800ms", "300ms", "500ms"]


async def test_a_statement_past_statement_timeout_is_cancelled(limited: AsyncEngine) -> None:
    started = time.monotonic()
    with pytest.raises(DBAPIError) as cancelled:
        async with limited.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(5)"))
    assert sqlstate(cancelled.value) == "57014", cancelled.value  # query_canceled: statement timeout
    assert time.monotonic() - started < 3


async def test_a_lock_wait_past_lock_timeout_fails_fast(limited: AsyncEngine, fresh_database: str) -> None:
    """A row held by a long transaction (e.g. the e2e test that holds a wallet) makes a writer fail in
    lock_timeout, not wait for as long as the holder likes."""
    holder = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM wallets WHERE id = 1 FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(DBAPIError) as refused:
            async with limited.begin() as conn:
                await conn.execute(text("UPDATE wallets SET balance = balance - 1 WHERE id = 1"))
        waited = time.monotonic() - started
        assert sqlstate(refused.value) == "55P03", refused.value  # lock_not_available
        assert 0.25 < waited < 0.8, f"waited {waited:.2f}s for a 300 ms lock_timeout"
        await held.rollback()
    finally:
        await holder.close()
    async with limited.begin() as conn:  # the holder gone, the same write goes through
        await conn.execute(text("UPDATE wallets SET balance = balance - 1 WHERE id = 1"))


async def test_a_transaction_left_idle_is_ended_and_its_locks_released(
    limited: AsyncEngine, fresh_database: str
) -> None:
    async with limited.connect() as conn:
        await conn.begin()
        await conn.execute(text("SELECT 1 FROM wallets WHERE id = 1 FOR UPDATE"))
        await asyncio.sleep(1.0)  # idle inside the transaction past its 500 ms
        with pytest.raises(DBAPIError):
            await conn.execute(text("SELECT 1"))
    other = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:  # the row lock went with the session
        await other.execute("SET lock_timeout = '100ms'; BEGIN; SELECT 1 FROM wallets WHERE id = 1 FOR UPDATE")
        await other.execute("ROLLBACK")
    finally:
        await other.close()


async def test_the_relays_connection_has_the_limits_and_its_vacuum_no_statement_limit(fresh_database: str) -> None:
    relay = OutboxRelay(
        database_url=fresh_database,
        producer=cast("AIOKafkaProducer", object()),  # never used: only the relay's connection is
        timeouts=LIMITS,
    )
    conn = await relay._connect()
    try:
        assert await conn.fetchval("SHOW statement_timeout") == "800ms"
        assert await conn.fetchval("SHOW lock_timeout") == "300ms"
    finally:
        await relay._close_conn()
    assert relay._vacuum_server_settings["statement_timeout"] == "0"
    assert relay._vacuum_server_settings["lock_timeout"] == "300"


async def test_a_request_cut_off_by_a_limit_answers_503_database_timeout(fresh_database: str) -> None:
    """What a caller sees: retry later (Retry-After), not an internal error."""
    from litestar import get
    from litestar.testing import AsyncTestClient
    from prometheus_client import CollectorRegistry

    from prizeflow_runtime.http import PUBLIC_KEY, create_app

    @get("/slow", opt={PUBLIC_KEY: True})
    async def slow() -> dict[str, str]:
        engine = create_engine(fresh_database, pool_size=1, timeouts=LIMITS)  # on the app's own event loop
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_sleep(5)"))
        finally:
            await engine.dispose()
        return {"status": "done"}

    app = create_app(service_name="unit", route_handlers=[slow], registry=CollectorRegistry())
    async with AsyncTestClient(app) as client:
        answer = await client.get("/slow")
    assert answer.status_code == 503
    assert answer.json()["code"] == "database_timeout"
    assert answer.headers["Retry-After"]


async def test_a_commit_waiting_for_a_synchronous_standby_is_never_cut_short_by_the_statement_timeout() -> None:
    """deploy/k8s commits wait for a standby (dataDurability: required). PostgreSQL switches the statement timeout
    off before a commit waits, so the services' limit never turns a commit into one held on the primary alone:
    without a standby, writes wait (and only the caller's own cancellation would end the wait)."""
    workdir = drill_workdir()
    cluster = Cluster(workdir / "pg", pick_free_port(), {"PATH": "/usr/bin:/bin"}).initdb()
    with (cluster.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("synchronous_standby_names = 'a_standby_that_never_comes'\n")
    cluster.start()
    engine = create_engine(cluster.database_url("postgres"), pool_size=1, timeouts=LIMITS)
    try:
        admin = await asyncpg.connect(cluster.admin_url)
        try:
            await admin.execute("SET synchronous_commit = local")  # the table itself, without waiting
            await admin.execute("CREATE TABLE transfers (id int PRIMARY KEY)")
        finally:
            await admin.close()

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO transfers VALUES (1)"))

        commit = asyncio.create_task(write())
        done, _ = await asyncio.wait({commit}, timeout=LIMITS.statement_timeout_ms * 4 / 1000)
        assert not done, "the commit returned without a standby"
        commit.cancel()
        with pytest.raises((asyncio.CancelledError, DBAPIError)):
            await commit
    finally:
        await engine.dispose()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
