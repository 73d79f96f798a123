"""Upgrades that cannot corrupt, on a real PostgreSQL: the migrations record each revision's phase in their own
transaction, a service runs against its schema or one ahead by expand steps only and refuses anything else (naming
both revisions, readiness false, its API answering 503), and a migration never queues behind a long transaction.

A "next release" is the settlement service's migrations copied with two more revisions: 0009 expands (adds a
column), 0010 contracts (drops it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy.exc import DBAPIError

from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.http import NotReady
from prizeflow_runtime.migrations import migrate, upgrade_to_head
from prizeflow_runtime.schema_compat import SchemaMismatchError
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import Profile, ServiceSettings
from prizeflow_settlement.expected_schema import EXPECTED_SCHEMA
from prizeflow_testkit import fetch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SETTLEMENT = ROOT / "services" / "settlement"

NEXT_RELEASE = {
    "0009_rounds_note.py": """
revision = "0009"
down_revision = "0008"
phase = "expand"


def upgrade() -> None:
    from alembic import op

    op.execute("ALTER TABLE rounds ADD COLUMN note text")


def downgrade() -> None:
    from alembic import op

    op.execute("ALTER TABLE rounds DROP COLUMN note")
""",
    "0010_rounds_note_dropped.py": """
revision = "0010"
down_revision = "0009"
phase = "contract"
unused_since = "0.2.0"


def upgrade() -> None:
    from alembic import op

    op.execute("ALTER TABLE rounds DROP COLUMN note")


def downgrade() -> None:
    from alembic import op

    op.execute("ALTER TABLE rounds ADD COLUMN note text")
""",
}


@pytest.fixture
def next_release(tmp_path: Path) -> str:
    """alembic.ini of the settlement migrations plus the next release's two revisions."""
    shutil.copy(SETTLEMENT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(SETTLEMENT / "migrations", tmp_path / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    for name, source in NEXT_RELEASE.items():
        (tmp_path / "migrations" / "versions" / name).write_text(source)
    return str(tmp_path / "alembic.ini")


@pytest.fixture
async def settlement_runtime(fresh_database: str) -> AsyncIterator[ServiceRuntime]:
    """This build's settlement runtime (no consumers declared: only its schema check matters here)."""
    settings = ServiceSettings(
        prizeflow_profile=Profile.DEV,
        service_name="settlement",
        database_url=fresh_database,
        jwt_jwks_url=None,
        jwt_secret=SecretStr("s" * 32),
        startup_retry_max_ms=200,
    )
    runtime = ServiceRuntime(settings, schema=EXPECTED_SCHEMA)
    yield runtime
    await runtime.stop()


async def _phases(url: str) -> list[tuple[str, str | None, str]]:
    rows = await fetch(url, "SELECT revision, down_revision, phase FROM prizeflow_schema_phases ORDER BY revision")
    return [(r["revision"], r["down_revision"], r["phase"]) for r in rows]


async def test_the_migrations_record_each_revisions_phase_and_a_downgrade_forgets_it(
    fresh_database: str, next_release: str
) -> None:
    await upgrade_to_head(str(SETTLEMENT / "alembic.ini"), fresh_database)
    recorded = await _phases(fresh_database)
    assert [r for r, _, _ in recorded] == list(EXPECTED_SCHEMA.revisions)
    assert ("0002", "0001", "contract") in recorded
    assert ("0008", "0007", "expand") in recorded

    await upgrade_to_head(next_release, fresh_database)
    assert (await _phases(fresh_database))[-2:] == [("0009", "0008", "expand"), ("0010", "0009", "contract")]

    await migrate(next_release, fresh_database, "0008", downgrade=True)
    assert [r for r, _, _ in await _phases(fresh_database)] == list(EXPECTED_SCHEMA.revisions)


async def test_a_service_runs_at_its_head_or_expand_steps_ahead_and_refuses_anything_else(
    fresh_database: str, next_release: str, settlement_runtime: ServiceRuntime
) -> None:
    rt, url = settlement_runtime, fresh_database
    ini = str(SETTLEMENT / "alembic.ini")

    async def refused() -> str:
        with pytest.raises(SchemaMismatchError) as error:
            await rt._verify_schema()
        with pytest.raises(NotReady) as not_ready:  # what /health/ready shows
            await rt.startup_ready()
        assert str(not_ready.value) == str(error.value)
        assert rt._serving_refused() == str(error.value)  # the API answers 503 with it
        return str(error.value)

    assert "no revision" in await refused()  # never migrated
    await upgrade_to_head(ini, url)
    await rt._verify_schema()
    assert rt._serving_refused() is None

    await migrate(ini, url, "0007", downgrade=True)
    assert await refused() == (
        "settlement: database schema at 0007, this build expects 0008: the database is behind: run this release's "
        "migrations first"
    )

    await migrate(next_release, url, "0009")  # the next release's expand step, run before its rollout
    await rt._verify_schema()  # the old pods keep serving
    assert rt._serving_refused() is None

    await migrate(next_release, url, "0010")  # its contract step: this build may still use the column
    assert "database schema at 0010, this build expects 0008: the database is ahead through contract step 0010" in (
        await refused()
    )

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("UPDATE alembic_version SET version_num = 'f00d'")  # a revision nobody recorded
    finally:
        await conn.close()
    assert "revision f00d is unknown to this build" in await refused()


async def test_start_up_waits_not_ready_until_the_migrations_arrive(
    fresh_database: str, settlement_runtime: ServiceRuntime
) -> None:
    """The rollout case: a new pod started before its migrations ran stays not ready (consuming and producing
    nothing), then comes up by itself once they ran."""
    rt = settlement_runtime
    ini = str(SETTLEMENT / "alembic.ini")
    await migrate(ini, fresh_database, "0007")
    starting = asyncio.create_task(rt.start())
    try:
        async with asyncio.timeout(30):
            while "database schema at 0007, this build expects 0008" not in (rt._waiting_for or ""):
                await asyncio.sleep(0.05)
        assert not rt.consumers  # nothing consumes or produces meanwhile
        assert rt._producer is None
        await upgrade_to_head(ini, fresh_database)
        async with asyncio.timeout(60):
            await starting  # the next attempt finds the head, and start-up goes on (Kafka: the devstack's)
        await rt.startup_ready()
    finally:
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting


async def test_a_migration_gives_up_its_lock_wait_instead_of_queueing_the_table_behind_it(
    fresh_database: str, next_release: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long transaction reads `rounds`; the expand step's ALTER TABLE waits for it at most MIGRATIONS_LOCK_TIMEOUT_MS
    per attempt (so the reads queued behind the ALTER wait no longer), rolls back whole, is retried, and gives up;
    once the reader is gone it goes through."""
    await migrate(next_release, fresh_database, "0008")
    monkeypatch.setenv("MIGRATIONS_LOCK_TIMEOUT_MS", "300")
    monkeypatch.setenv("MIGRATIONS_LOCK_RETRIES", "1")
    reader = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        holding = reader.transaction()
        await holding.start()
        await reader.execute("SELECT count(*) FROM rounds")  # holds ACCESS SHARE until the transaction ends
        started = time.monotonic()
        with pytest.raises(DBAPIError) as failed:
            await migrate(next_release, fresh_database, "0009")
        took = time.monotonic() - started
        assert getattr(failed.value.orig, "sqlstate", None) == "55P03", failed.value  # lock_not_available
        assert took < 5, f"two attempts of 300 ms lock waits and a 1 s pause took {took:.1f}s"
        await holding.rollback()
    finally:
        await reader.close()
    assert (await fetch(fresh_database, "SELECT version_num FROM alembic_version"))[0]["version_num"] == "0008"
    await migrate(next_release, fresh_database, "0009")
    assert (await fetch(fresh_database, "SELECT version_num FROM alembic_version"))[0]["version_num"] == "0009"


async def test_the_console_does_not_start_on_a_schema_it_cannot_run_against(fresh_database: str) -> None:
    """The console (no ServiceRuntime) makes the same check at start-up; a refusal fails its start-up."""
    from prizeflow_console.bootstrap import refuse_incompatible_schema
    from prizeflow_runtime.db import create_engine

    engine = create_engine(fresh_database, pool_size=1)
    try:
        with pytest.raises(SchemaMismatchError, match="console: database schema at no revision"):
            await refuse_incompatible_schema(engine)
        await upgrade_to_head(str(ROOT / "services" / "console" / "alembic.ini"), fresh_database)
        await refuse_incompatible_schema(engine)
    finally:
        await engine.dispose()
