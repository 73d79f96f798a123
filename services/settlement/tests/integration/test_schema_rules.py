"""The rules PostgreSQL itself enforces on the settlement tables, whatever the code does (migrated schema)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest

from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import migrate, upgrade_to_head

from .conftest import ALEMBIC_INI

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# One valid row per child table for round `round_id`, as COPY records (columns as listed).
Row = Callable[[str, int], tuple[object, ...]]
CHILD_ROWS: dict[str, tuple[tuple[str, ...], Row]] = {
    "round_entries": (
        ("round_id", "entry_id", "player_id", "fee_asset", "fee_amount", "paid_via", "recorded_at"),
        lambda r, i: (r, f"e{i}", f"p{i}", "USDC", 100, "wallet", NOW),
    ),
    "round_results": (("round_id", "player_id", "rank", "score"), lambda r, i: (r, f"p{i}", i + 1, 10 - i)),
    "round_allocations": (
        ("round_id", "player_id", "rank", "asset", "amount", "source"),
        lambda r, i: (r, f"p{i}", i + 1, "USDC", 500, "pool"),
    ),
    "round_fees": (
        ("round_id", "party", "account_id", "asset", "amount"),
        lambda r, i: (r, ("platform", "organizer")[i], "acct", "USDC", 5),
    ),
    "round_transitions": (
        ("round_id", "from_state", "to_state", "at"),
        lambda r, i: (r, ("closed", "resolved")[i], ("resolved", "settled")[i], NOW),
    ),
}


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(db_url))
    await add_round(connection, "r-1")
    yield connection
    await connection.close()


async def add_round(conn: asyncpg.Connection, round_id: str) -> None:
    await conn.execute(
        """
        INSERT INTO rounds (round_id, competition_id, game_id, correlation_id, state, prize_source, asset, spec,
                            reached, opened_at, closed_at)
        VALUES ($1, 'c-1', 'g-1', $1, 'closed', 'sponsored', 'USDC', '{}', '{open,closed}', $2, $2)
        """,
        round_id,
        NOW,
    )


async def count(conn: asyncpg.Connection, table: str) -> int:
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))


@pytest.mark.parametrize("table", sorted(CHILD_ROWS))
async def test_a_child_row_of_an_unknown_round_refuses_the_whole_statement(
    conn: asyncpg.Connection, table: str
) -> None:
    columns, row = CHILD_ROWS[table]
    # COPY (the service's path) with one bad row among good ones: nothing of it is written.
    with pytest.raises(asyncpg.ForeignKeyViolationError, match="round r-missing, which does not exist"):
        await conn.copy_records_to_table(table, records=[row("r-1", 0), row("r-missing", 1)], columns=columns)
    # A plain INSERT is checked the same way.
    placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", *row("r-nope", 0))
    assert await count(conn, table) == 0

    await conn.copy_records_to_table(table, records=[row("r-1", 0), row("r-1", 1)], columns=columns)
    assert await count(conn, table) == 2
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="round_id cannot change"):
        await conn.execute(f"UPDATE {table} SET round_id = 'r-2'")


async def test_rounds_are_never_deleted_truncated_or_renamed(conn: asyncpg.Connection) -> None:
    for statement in ("DELETE FROM rounds WHERE round_id = 'r-1'", "TRUNCATE rounds CASCADE"):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="rounds are never deleted"):
            await conn.execute(statement)
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="round_id cannot change"):
        await conn.execute("UPDATE rounds SET round_id = 'r-9' WHERE round_id = 'r-1'")
    await conn.execute("UPDATE rounds SET round_id = 'r-1', entries_seen = 3 WHERE round_id = 'r-1'")  # unchanged id
    assert await conn.fetchval("SELECT entries_seen FROM rounds WHERE round_id = 'r-1'") == 3


async def test_checks_refuse_illegal_transitions_and_impossible_money(conn: asyncpg.Connection) -> None:
    bad = [
        ("INSERT INTO round_transitions (round_id, from_state, to_state, at) VALUES ('r-1', 'open', 'settled', $1)",),
        ("INSERT INTO round_allocations VALUES ('r-1', 'p0', 1, 'USDC', 0, 'pool')",),
        ("INSERT INTO round_allocations VALUES ('r-1', 'p0', 0, 'USDC', 5, 'pool')",),
        ("INSERT INTO round_fees VALUES ('r-1', 'platform', 'acct', 'USDC', -1)",),
        ("UPDATE rounds SET state = 'settled' WHERE round_id = 'r-1'",),  # settled needs settled_at and results
        ("UPDATE rounds SET state = 'paid' WHERE round_id = 'r-1'",),
        ("UPDATE rounds SET pot = -1 WHERE round_id = 'r-1'",),
    ]
    for (statement,) in bad:
        args = (NOW,) if "$1" in statement else ()
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(statement, *args)
    resolved = (
        "INSERT INTO round_transitions (round_id, from_state, to_state, at) VALUES ('r-1', 'closed', 'resolved', $1)"
    )
    await conn.execute(resolved, NOW)
    with pytest.raises(asyncpg.UniqueViolationError):  # a round enters each state once
        await conn.execute(resolved, NOW)


async def test_downgrade_restores_the_foreign_keys_and_upgrade_replaces_them_again(db_url: str) -> None:
    async def foreign_keys() -> set[str]:
        c = await asyncpg.connect(asyncpg_dsn(db_url))
        try:
            rows = await c.fetch("SELECT conname FROM pg_constraint WHERE contype = 'f'")
            return {r["conname"] for r in rows}
        finally:
            await c.close()

    assert await foreign_keys() == {"round_disputes_round_id_fkey"}
    await migrate(ALEMBIC_INI, db_url, "0002", downgrade=True)
    assert await foreign_keys() == {"round_disputes_round_id_fkey"} | {f"{t}_round_id_fkey" for t in CHILD_ROWS}
    await upgrade_to_head(ALEMBIC_INI, db_url)
    assert await foreign_keys() == {"round_disputes_round_id_fkey"}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("spec", "'{\"prize\": 1}'::jsonb"),
        ("competition_id", "'c-2'"),
        ("game_id", "'g-2'"),
        ("organizer_id", "'o-2'"),
        ("correlation_id", "'x-2'"),
        ("prize_source", "'entry_pot'"),
        ("asset", "'EUR'"),
        ("opened_at", "opened_at + interval '1 second'"),
    ],
)
async def test_the_terms_of_a_round_never_change(conn: asyncpg.Connection, column: str, value: str) -> None:
    """The service caches a round's terms on this promise (SpecCache): no writer may break it."""
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="terms of round r-1 cannot change"):
        await conn.execute(f"UPDATE rounds SET {column} = {value} WHERE round_id = 'r-1'")
    # Writing the same value again is not a change; the hot path's UPDATE (state, counters) is untouched.
    await conn.execute(f"UPDATE rounds SET {column} = {column}, entries_seen = 2 WHERE round_id = 'r-1'")
    assert await conn.fetchval("SELECT entries_seen FROM rounds WHERE round_id = 'r-1'") == 2


async def test_downgrade_of_0004_lets_terms_change_again(db_url: str) -> None:
    await migrate(ALEMBIC_INI, db_url, "0003", downgrade=True)
    c = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        await add_round(c, "r-1")
        await c.execute("UPDATE rounds SET asset = 'EUR' WHERE round_id = 'r-1'")
        await upgrade_to_head(ALEMBIC_INI, db_url)
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await c.execute("UPDATE rounds SET asset = 'USDC' WHERE round_id = 'r-1'")
    finally:
        await c.close()


@pytest.mark.parametrize("target", ["open", "closed", "resolved", "settled"])
async def test_a_voided_round_never_moves_again_whatever_sql_asks(conn: asyncpg.Connection, target: str) -> None:
    """Migration 0008: a change of state follows a path of the round state machine; a final round has none."""
    await conn.execute(
        "UPDATE rounds SET state = 'voided', voided_at = $1, void_reason = 'crash' WHERE round_id = 'r-1'", NOW
    )
    with pytest.raises(asyncpg.CheckViolationError, match="not a transition of the round state machine"):
        await conn.execute(
            "UPDATE rounds SET state = $1, voided_at = NULL, settled_at = $2 WHERE round_id = 'r-1'", target, NOW
        )
    assert await conn.fetchval("SELECT state FROM rounds WHERE round_id = 'r-1'") == "voided"
