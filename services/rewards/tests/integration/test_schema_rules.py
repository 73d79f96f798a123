"""The rules PostgreSQL itself enforces on the rewards tables (migration 0005), whatever the code does: each bad
row is refused by the database, written through raw SQL that bypasses the ledger and the use cases."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountRef
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import migrate, upgrade_to_head

from .conftest import ALEMBIC_INI

pytestmark = pytest.mark.integration

WALLET = accounts.wallet("p-1", "USDC")
CLEARING = accounts.clearing("USDC")
XLM_WALLET = accounts.wallet("p-1", "XLM")


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    for ref in (WALLET, CLEARING, XLM_WALLET):
        await add_account(connection, ref)
    yield connection
    await connection.close()


async def add_account(conn: asyncpg.Connection, ref: AccountRef, *, credits: int = 0) -> None:
    await conn.execute(
        "INSERT INTO ledger_accounts (id, kind, owner_id, asset, flags, credits_posted) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        ref.id,
        ref.kind.value,
        ref.owner,
        ref.asset,
        int(ref.flags),
        credits,
    )


async def add_transfer(
    conn: asyncpg.Connection, debit: uuid.UUID, credit: uuid.UUID, asset: str = "USDC", *, flags: int = 1
) -> uuid.UUID:
    """A pending transfer (flags 1) by raw SQL: nothing of the ledger's code runs."""
    tid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, asset, amount, kind, flags, "
        "business_key) VALUES ($1, $2, $3, $4, 100, 'claim_reserve', $5, $6)",
        tid,
        debit,
        credit,
        asset,
        flags,
        f"claim_reserve|{tid}",
    )
    return tid


async def add_claim(conn: asyncpg.Connection, claim_id: str, pending: uuid.UUID, *, request: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO claims (id, player_id, asset, amount, destination, destination_key, status, "
        "pending_transfer_id, payout_request_id, correlation_id) "
        "VALUES ($1, 'p-1', 'USDC', 100, '{}', 'k', 'approved', $2, $3, $1)",
        claim_id,
        pending,
        request or f"pr-{claim_id}",
    )


async def count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


async def test_a_transfer_naming_a_missing_account_is_refused(conn: asyncpg.Connection) -> None:
    ghost = accounts.wallet("nobody", "USDC").id
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=f"names account {ghost}, which does not exist"):
        await add_transfer(conn, ghost, CLEARING.id)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=f"names account {ghost}"):
        await add_transfer(conn, WALLET.id, ghost)
    assert await count(conn, "ledger_transfers") == 0


async def test_one_bad_transfer_refuses_its_whole_batch(conn: asyncpg.Connection) -> None:
    ghost = uuid.uuid4()
    rows = [(uuid.uuid4(), WALLET.id, CLEARING.id), (uuid.uuid4(), WALLET.id, ghost)]
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, asset, amount, kind, flags, "
            "business_key) SELECT i, d, c, 'USDC', 5, 'reward', 0, i::text "
            "FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS r(i, d, c)",
            [r[0] for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
        )
    assert await count(conn, "ledger_transfers") == 0


async def test_a_transfer_across_assets_is_refused(conn: asyncpg.Connection) -> None:
    # The two accounts in different assets...
    with pytest.raises(asyncpg.CheckViolationError, match="from an account in XLM to an account in USDC"):
        await add_transfer(conn, XLM_WALLET.id, CLEARING.id, "USDC")
    # ...or both in one asset, but not the transfer's own.
    with pytest.raises(asyncpg.CheckViolationError, match="in XLM moves money from an account in USDC"):
        await add_transfer(conn, WALLET.id, CLEARING.id, "XLM")
    assert await count(conn, "ledger_transfers") == 0
    assert await add_transfer(conn, WALLET.id, CLEARING.id, "USDC")  # the same row, consistent, is fine


async def test_an_account_is_never_deleted_nor_changes_its_identity(conn: asyncpg.Connection) -> None:
    await add_transfer(conn, WALLET.id, CLEARING.id)
    for statement in ("DELETE FROM ledger_accounts WHERE id = $1", "TRUNCATE ledger_accounts CASCADE"):
        with pytest.raises(asyncpg.RestrictViolationError, match="never deleted"):
            await conn.execute(statement, *([WALLET.id] if "$1" in statement else []))
    for column, value in (("asset", "XLM"), ("flags", 0), ("owner_id", "p-2"), ("kind", "treasury")):
        with pytest.raises(asyncpg.RestrictViolationError, match="keeps its id, kind, owner, asset and flags"):
            await conn.execute(f"UPDATE ledger_accounts SET {column} = $2 WHERE id = $1", WALLET.id, value)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE ledger_accounts SET id = $2 WHERE id = $1", WALLET.id, uuid.uuid4())
    # The counters move as ever (and a no-op write of an identity column is no change).
    await conn.execute("UPDATE ledger_accounts SET credits_posted = 500, asset = asset WHERE id = $1", WALLET.id)
    assert await conn.fetchval("SELECT credits_posted FROM ledger_accounts WHERE id = $1", WALLET.id) == 500


async def test_a_claim_needs_its_own_reservation(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="claims_pending_transfer_exists"):
        await add_claim(conn, "cl-1", uuid.uuid4())
    pending = await add_transfer(conn, WALLET.id, CLEARING.id)
    await add_claim(conn, "cl-1", pending)
    with pytest.raises(asyncpg.UniqueViolationError, match="claims_one_per_reservation"):
        await add_claim(conn, "cl-2", pending)  # two claims backed by one reservation
    other = await add_transfer(conn, WALLET.id, CLEARING.id)
    with pytest.raises(asyncpg.UniqueViolationError, match="claims_payout_request_unique"):
        await add_claim(conn, "cl-3", other, request="pr-cl-1")  # one payout request for two claims
    assert await count(conn, "claims") == 1


async def test_downgrade_removes_the_rules_and_upgrade_puts_them_back(database_url: str) -> None:
    await migrate(ALEMBIC_INI, database_url, "0004", downgrade=True)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        for ref in (WALLET, CLEARING):
            await add_account(conn, ref)
        orphan = await add_transfer(conn, WALLET.id, uuid.uuid4())  # 0004 did not check
        await add_claim(conn, "cl-1", uuid.uuid4())
        await conn.execute("DELETE FROM claims")
        # An upgrade over an orphan transfer fails whole: nothing of 0005 is applied, no row is grandfathered.
        # (In its own process: a failed in-process run leaves its engine to the garbage collector.)
        upgrade = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "alembic",
            "-c",
            ALEMBIC_INI,
            "upgrade",
            "head",
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await upgrade.communicate()
        assert upgrade.returncode != 0
        assert b"naming a missing account" in output
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == "0004"
        # 0004's ledger forbids deleting a transfer; a test database can drop the trigger to clean up.
        await conn.execute("ALTER TABLE ledger_transfers DISABLE TRIGGER ledger_transfers_append_only")
        await conn.execute("DELETE FROM ledger_transfers WHERE id = $1", orphan)
        await conn.execute("ALTER TABLE ledger_transfers ENABLE TRIGGER ledger_transfers_append_only")
        await upgrade_to_head(ALEMBIC_INI, database_url)
        head = ScriptDirectory.from_config(Config(ALEMBIC_INI)).get_current_head()
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await add_transfer(conn, WALLET.id, uuid.uuid4())
    finally:
        await conn.close()
