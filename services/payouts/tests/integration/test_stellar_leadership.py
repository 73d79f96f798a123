"""Stellar engine leader election on real PostgreSQL: collision-free lock keys, a leader whose session is
terminated stops at once and another takes over, never two acting at once; migration 0006 downgrades cleanly."""

from __future__ import annotations

import contextlib
import itertools
import time
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text
from stellar_sdk import Keypair

import prizeflow_stellar as ps
from prizeflow_payouts.adapters.stellar import StellarOptions, StellarPayoutProvider
from prizeflow_payouts.adapters.stellar.books import StellarBooks, bind
from prizeflow_payouts.adapters.stellar.leader import ENGINE_LOCK_SPACE, EngineLeadership
from prizeflow_payouts.adapters.stellar.settings import StellarMode
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.jobs import Scheduler
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_runtime.sql_uow import unit_of_work
from prizeflow_testkit.payouts import ALEMBIC_INI
from prizeflow_testkit.waits import eventually

pytestmark = pytest.mark.integration

FUNDING = Keypair.random().public_key


def options(name: str = "stellar") -> StellarOptions:
    return StellarOptions(
        name=name,
        mode=StellarMode.PAYMENTS,
        live_execution=True,
        network_passphrase="Prizeflow Leadership Tests ; 2025",
        rpc_url="http://127.0.0.1:1/",  # nothing answers: ticks find no work and build nothing
        funding_account=FUNDING,
        channel_accounts=(),
        contract_id=None,
        method_name=ps.DEFAULT_METHOD_NAME,
        contract_asset="XLM",
        assets=("XLM",),
        max_fee_stroops=2_000_000,
        rpc_timeout_s=0.5,
    )


def colliding_names() -> tuple[str, str]:
    """Two provider names the old key (`crc32(name) & 0xFFFF`) gave the same lock."""
    seen: dict[int, str] = {}
    for n in itertools.count():
        name = f"stellar-{n}"
        key = zlib.crc32(name.encode()) & 0xFFFF
        if key in seen:
            return seen[key], name
        seen[key] = name
    raise AssertionError("unreachable")


async def test_provider_names_get_distinct_lock_keys_idempotently(db: str) -> None:
    first, second = colliding_names()
    engine = create_engine(db, pool_size=2)
    try:
        keys: dict[str, tuple[int, int]] = {}
        for name in (first, second, first, "stellar", second):  # again: the same row, the same key
            async with unit_of_work(engine, bind)() as books:
                key = await EngineLeadership(name).ensure_key(books)
            assert keys.setdefault(name, key) == key
        assert len(set(keys.values())) == 3
        assert {space for space, _ in keys.values()} == {ENGINE_LOCK_SPACE}
        # Both former colliders lead at once: their locks are distinct.
        a, b = EngineLeadership(first), EngineLeadership(second)
        a.key, b.key = keys[first], keys[second]
        assert await a.try_lead(engine)
        assert await b.try_lead(engine)
        await a.drop()
        await b.drop()
        # The two-key space is not the bigint one: a bigint lock with the same 64 bits takes nothing from us.
        space, lock_id = keys["stellar"]
        async with engine.connect() as other:
            assert (
                await other.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": (space << 32) | lock_id})
            ).scalar()
            c = EngineLeadership("stellar")
            c.key = keys["stellar"]
            assert await c.try_lead(engine)
            await c.drop()
            await other.execute(text("SELECT pg_advisory_unlock_all()"))
    finally:
        await engine.dispose()


async def test_migration_0006_downgrades_and_upgrades_again(db: str) -> None:
    async def tables() -> set[str]:
        engine = create_engine(db, pool_size=1)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                return {r[0] for r in rows}
        finally:
            await engine.dispose()

    assert "stellar_engine_locks" in await tables()
    await migrate(ALEMBIC_INI, db, "0005", downgrade=True)
    assert "stellar_engine_locks" not in await tables()
    await upgrade_to_head(ALEMBIC_INI, db)
    assert "stellar_engine_locks" in await tables()


def record_actions(provider: StellarPayoutProvider, log: list[tuple[float, str]], who: str) -> None:
    """Note every transaction the provider's engine commits on its leader session, and when."""
    leadership = provider.leadership
    original: Callable[[], Any] = leadership.uow

    @contextlib.asynccontextmanager
    async def uow() -> AsyncIterator[StellarBooks]:
        async with original() as books:
            yield books
        log.append((time.monotonic(), who))

    leadership.uow = uow  # type: ignore[method-assign]


async def lock_holders(db: str, key: tuple[int, int]) -> list[int]:
    engine = create_engine(db, pool_size=1)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    # pg_locks is the whole server's: other tests' payouts (other databases) hold the same key.
                    "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND d.datname = current_database()"
                    " AND l.classid = CAST(:s AS oid) AND l.objid = CAST(:i AS oid)"
                ),
                {"s": key[0], "i": key[1]},
            )
            return [int(r[0]) for r in rows]
    finally:
        await engine.dispose()


async def test_a_leader_whose_backend_is_terminated_stops_and_another_takes_over(db: str) -> None:
    actions: list[tuple[float, str]] = []
    a = StellarPayoutProvider(options(), database_url=db)
    b = StellarPayoutProvider(options(), database_url=db)
    record_actions(a, actions, "a")
    record_actions(b, actions, "b")
    # Two processes: each runs its rail's passes on its own scheduler, as the bootstrap does.
    a_jobs, b_jobs = Scheduler(), Scheduler()
    a.schedule(a_jobs)
    b.schedule(b_jobs)
    try:
        await a.start()
        await a_jobs.start()
        await eventually(lambda: _value(a.leadership.leads), lambda leads: leads, timeout=10, interval=0.02)
        await b.start()
        await b_jobs.start()
        await eventually(lambda: _value(len([w for _, w in actions if w == "a"])), lambda n: n >= 5, timeout=10)
        assert not b.leadership.leads
        assert a.leadership.key is not None
        (pid,) = await lock_holders(db, a.leadership.key)

        admin = create_engine(db, pool_size=1)
        try:
            async with admin.connect() as conn:
                assert (await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})).scalar()
                await conn.commit()
        finally:
            await admin.dispose()
        killed_at = time.monotonic()

        await eventually(lambda: _value(a.leadership.leads), lambda leads: not leads, timeout=5, interval=0.01)
        await eventually(lambda: _value(b.leadership.leads), lambda leads: leads, timeout=10, interval=0.02)
        await eventually(lambda: _value(len([w for _, w in actions if w == "b"])), lambda n: n >= 5, timeout=10)

        holders = await lock_holders(db, a.leadership.key)
        assert len(holders) == 1
        assert holders != [pid]
        a_times = [t for t, w in actions if w == "a"]
        b_times = [t for t, w in actions if w == "b"]
        # The terminated leader committed nothing once its session was gone (its work runs on that session),
        # and the new one only after it: never both, not even for one transaction.
        assert max(a_times) < min(b_times), actions
        assert min(b_times) > killed_at - 0.1
        assert not a.leadership.leads
    finally:
        await a_jobs.stop()
        await b_jobs.stop()
        await a.close()
        await b.close()


async def _value(value: Any) -> Any:
    return value
