"""The owner migrates, the service runs as a runtime role that only reads and writes rows.

A database owned by its own owner role, migrated with MIGRATIONS_RUNTIME_ROLE: as the runtime role the ledger
works, while DDL (disabling the append-only trigger, dropping or creating tables), TRUNCATE and rewriting the
ledger fail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_devstack.infra import Infra
from prizeflow_rewards.adapters.backend_pg import SqlLostCommits
from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_runtime.migrations import upgrade_to_head

from .conftest import ALEMBIC_INI

pytestmark = pytest.mark.integration

TREASURY = AccountRef(AccountKind.TREASURY, "platform", "USDC")
POOL = AccountRef(AccountKind.CAMPAIGN_POOL, "camp-1", "USDC")


@dataclass(frozen=True)
class Roles:
    owner_url: str
    app_url: str
    owner: str
    app: str


@pytest.fixture
async def roles(infra: Infra) -> AsyncIterator[Roles]:
    """A fresh database owned by a fresh owner role, a fresh runtime role beside it; all dropped afterwards."""
    tag = uuid.uuid4().hex[:12]
    owner, app, database = f"t_owner_{tag}", f"t_app_{tag}", f"test_roles_{tag}"
    password = uuid.uuid4().hex
    admin = await asyncpg.connect(asyncpg_dsn(infra.postgres_url), timeout=10)
    try:
        for role in (owner, app):
            await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        await admin.execute(f"CREATE DATABASE {database} OWNER {owner}")
        await admin.execute(f"REVOKE CONNECT ON DATABASE {database} FROM PUBLIC")
        url = make_url(infra.database_url(database)).set(password=password)
        yield Roles(
            owner_url=url.set(username=owner).render_as_string(hide_password=False),
            app_url=url.set(username=app).render_as_string(hide_password=False),
            owner=owner,
            app=app,
        )
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        for role in (app, owner):
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


@pytest.fixture
async def app_engine(roles: Roles) -> AsyncIterator[AsyncEngine]:
    await upgrade_to_head(ALEMBIC_INI, roles.owner_url, runtime_role=roles.app)
    engine = create_engine(roles.app_url)
    yield engine
    await engine.dispose()


async def test_the_runtime_role_moves_money_through_the_ledger(app_engine: AsyncEngine) -> None:
    ledger = SqlLedger
    transfer = Transfer.of(TREASURY, POOL, 1_000, TransferKind.CAMPAIGN_FUNDING, "camp-1", "ref-1")
    async with app_engine.begin() as conn:
        result = await ledger(conn).apply([transfer])
        await conn.execute(text("UPDATE player_risk_flags SET reason = reason WHERE false"))
        await conn.execute(text("DELETE FROM outbox WHERE false"))
    assert result.applied_ids == {transfer.id}
    async with app_engine.connect() as conn:
        rows = await conn.execute(text("SELECT count(*) FROM ledger_transfers"))
        assert rows.scalar_one() == 1
        me = await conn.execute(
            text(
                "SELECT current_user <> (SELECT datdba::regrole::text FROM pg_database "
                "WHERE datname = current_database())"
            )
        )
        assert me.scalar_one() is True  # not the owner


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_append_only",
        "ALTER TABLE ledger_transfers DISABLE TRIGGER ALL",
        "ALTER TABLE ledger_accounts DROP CONSTRAINT IF EXISTS ledger_accounts_pkey",
        "DROP TABLE ledger_transfers",
        "CREATE TABLE smuggled (id int)",
        "CREATE SCHEMA smuggled",
        "TRUNCATE ledger_transfers",
        "UPDATE ledger_transfers SET amount = amount + 1",
        "DELETE FROM ledger_transfers",
        "DELETE FROM ledger_accounts",
        "SET session_replication_role = replica",
    ],
)
async def test_the_runtime_role_cannot_change_the_schema_nor_rewrite_the_ledger(
    app_engine: AsyncEngine, statement: str
) -> None:
    transfer = Transfer.of(TREASURY, POOL, 500, TransferKind.CAMPAIGN_FUNDING, "camp-1", "ref-1")
    async with app_engine.begin() as conn:
        await SqlLedger(conn).apply([transfer])
    with pytest.raises(DBAPIError):
        async with app_engine.begin() as conn:
            await conn.execute(text(statement))
    async with app_engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM ledger_transfers"))).scalar_one() == 1


async def test_migrations_refuse_a_runtime_role_that_acts_as_the_owner(roles: Roles) -> None:
    """MIGRATIONS_RUNTIME_ROLE naming the owner (a copy-paste of the wrong secret) fails the migrations job, and
    they roll back with it."""
    with pytest.raises(RuntimeError, match="acts as"):
        await upgrade_to_head(ALEMBIC_INI, roles.owner_url, runtime_role=roles.owner)
    with pytest.raises(RuntimeError, match="does not exist"):
        await upgrade_to_head(ALEMBIC_INI, roles.owner_url, runtime_role="t_nobody_here")
    engine = create_engine(roles.owner_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT to_regclass('ledger_transfers') IS NULL"))).scalar_one()
    finally:
        await engine.dispose()


async def test_the_runtime_role_ends_the_backend_of_a_connection_it_lost(app_engine: AsyncEngine, roles: Roles) -> None:
    """What a claim batch whose COMMIT lost its connection does before it reads back what was committed: the
    runtime role may end its own backends (and read their state), so the transaction is over for good."""
    lost = await asyncpg.connect(asyncpg_dsn(roles.app_url))
    try:
        pid = lost.get_server_pid()
        tx = lost.transaction()
        await tx.start()
        await lost.execute("SELECT 1 FROM ledger_accounts FOR UPDATE")  # idle in transaction from here
        await SqlLostCommits(session_factory(app_engine)).end(pid)
        async with app_engine.connect() as conn:
            rows = await conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})
            assert rows.scalar_one() == 0
    finally:
        lost.terminate()
