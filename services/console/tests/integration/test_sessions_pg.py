"""The console's sessions on real PostgreSQL (migration 0001): what one replica ends, every replica sees ended;
an ended session never starts again, whatever SQL asks; the admin's ending of a person's sessions is on record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from prizeflow_console.adapters.sessions_pg import PgSessionStore
from prizeflow_console.domain.session import EndReason, SessionRecord, id_hash, new_session_id
from prizeflow_console.domain.viewer import Viewer
from prizeflow_runtime.db import asyncpg_dsn, create_engine

pytestmark = pytest.mark.integration

ALEMBIC_INI = str(Path(__file__).parents[2] / "alembic.ini")
NOW = datetime.now(UTC)


@pytest.fixture
def db(migrated_database: Callable[[str], str]) -> str:
    return migrated_database(ALEMBIC_INI)


@pytest.fixture
async def replicas(db: str) -> AsyncIterator[tuple[PgSessionStore, PgSessionStore]]:
    one, two = create_engine(db, pool_size=1), create_engine(db, pool_size=1)
    try:
        yield PgSessionStore(one), PgSessionStore(two)
    finally:
        await one.dispose()
        await two.dispose()


def record(user: str, *roles: str) -> tuple[str, SessionRecord]:
    sid = new_session_id()
    return sid, SessionRecord(
        id_hash=id_hash(sid),
        viewer=Viewer.of(user, user.title(), roles),
        access_token=f"token-of-{user}",
        token_expires_at=NOW + timedelta(hours=1),
        created_at=NOW,
        last_seen_at=NOW,
    )


async def test_what_one_replica_ends_every_replica_sees_ended(
    replicas: tuple[PgSessionStore, PgSessionStore], db: str
) -> None:
    one, two = replicas
    sid, rec = record("olga", "ops", "approver")
    await one.create(rec)
    seen = await two.get(id_hash(sid))
    assert seen is not None
    assert (seen.viewer, seen.access_token, seen.ended_at) == (rec.viewer, "token-of-olga", None)
    await two.touch(id_hash(sid), NOW + timedelta(minutes=2))
    await one.touch(id_hash(sid), NOW + timedelta(minutes=1))  # never moves backwards
    assert (await one.get(id_hash(sid))).last_seen_at == NOW + timedelta(minutes=2)  # type: ignore[union-attr]
    assert await one.end(id_hash(sid), reason=EndReason.SIGNED_OUT, at=NOW + timedelta(minutes=3))
    assert not await two.end(id_hash(sid), reason=EndReason.EXPIRED_IDLE, at=NOW + timedelta(minutes=4))
    ended = await two.get(id_hash(sid))
    assert ended is not None
    assert (ended.end_reason, ended.ended_at) == (EndReason.SIGNED_OUT, NOW + timedelta(minutes=3))
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="never starts again"):
            await conn.execute("UPDATE console_sessions SET ended_at = NULL, end_reason = NULL")
        assert await conn.fetchval("SELECT count(*) FROM console_sessions WHERE access_token LIKE 'pf%'") == 0
        stored = await conn.fetchval("SELECT id_hash FROM console_sessions")
        assert bytes(stored) != sid.encode()  # the table never holds the cookie's value
    finally:
        await conn.close()


async def test_an_admin_ends_every_live_session_of_a_person_and_it_is_on_record(
    replicas: tuple[PgSessionStore, PgSessionStore], db: str
) -> None:
    one, two = replicas
    mine = [record("mallory", "ops") for _ in range(2)]
    other = record("olga", "ops")
    for _, rec in [*mine, other]:
        await one.create(rec)
    await one.end(mine[0][1].id_hash, reason=EndReason.SIGNED_OUT, at=NOW)
    ended = await two.end_all_of("mallory", actor="ada", actor_roles=["admin"], reason="stolen laptop", at=NOW)
    assert ended == 1  # the live one; the one signed out stays signed out
    assert (await one.get(mine[1][1].id_hash)).end_reason is EndReason.ENDED_BY_ADMIN  # type: ignore[union-attr]
    assert (await one.get(other[1].id_hash)).ended_at is None  # type: ignore[union-attr]
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        rows = await conn.fetch("SELECT actor, actor_roles, subject, reason, sessions_ended FROM console_session_ends")
        assert [tuple(r) for r in rows] == [("ada", ["admin"], "mallory", "stolen laptop", 1)]
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("DELETE FROM console_session_ends")
    finally:
        await conn.close()
