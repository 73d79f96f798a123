"""The publisher's per-key order check (`_CHECK`) in SQL, on PostgreSQL, when the outbox holds a backlog below the
batch (the relay draining what a failed publish or a crash left, within `backlog_window`). The check must cost the
rows below the batch once, not those rows times the batch's keys. Before, it tested them with `= ANY(array(...))`
and `<> ALL($1)`, a filter comparing every row with every key: 167 ms for a batch of 2,000 behind 18,000 rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.outbox_publisher import _CHECK
from prizeflow_testkit.plans import array_literal, generic_plan

pytestmark = pytest.mark.integration

_ROWS = (
    "INSERT INTO outbox (event_id, topic, key, headers, payload, event_type) "
    "SELECT e, 'things', convert_to('key-' || (n % $2), 'UTF8'), '{}', '\\x00', 'thing' "
    "FROM unnest($1::uuid[]) WITH ORDINALITY AS u(e, n)"
)


def _compared_by_array_filters(node: Mapping[str, Any]) -> int:
    """Rows a scan tested against an array filter (`= ANY(...)`, `<> ALL(...)`: each row compared with every
    element), over all its loops."""
    own = 0
    if "ANY (" in node.get("Filter", "") or "ALL (" in node.get("Filter", ""):
        own = (int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))) * int(
            node.get("Actual Loops", 1)
        )
    return own + sum(_compared_by_array_filters(child) for child in node.get("Plans", []))


async def test_a_batch_behind_a_backlog_is_checked_without_comparing_every_row_with_every_key(
    engine: AsyncEngine, fresh_database: str
) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(fresh_database))
    try:
        await conn.execute("ANALYZE outbox")  # statistics of an empty outbox: a quiet spell
        backlog = [uuid.uuid4() for _ in range(18_000)]
        batch = [uuid.uuid4() for _ in range(2_000)]
        await conn.execute(_ROWS, backlog, 500)  # every key of the batch has earlier events waiting
        await conn.execute(_ROWS, batch, 500)
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, key, headers, payload, event_type) "
            "VALUES ($1, 'things', 'key-lonely', '{}', '\\x00', 'thing')",
            uuid.uuid4(),
        )

        # The plan the plan cache settles on after a prepared statement's fifth run, explained generic.
        plan = await generic_plan(conn, _CHECK, [array_literal(batch), "100000"])
        # No row below the batch is compared with every key and id of the batch (the old check compared 20,001).
        assert _compared_by_array_filters(plan) <= len(batch)

        # Behaviour: every event of the batch is present, and every key of theirs has an earlier event waiting.
        row = await conn.fetchrow(_CHECK, batch, 100_000)
        assert set(row["present"]) == set(batch)
        assert {bytes(k).decode() for k in row["behind"]} == {f"key-{n}" for n in range(500)}
        # A batch with no earlier event of its keys: nothing behind; beyond the window, not scanned (NULL).
        lonely = await conn.fetchval("SELECT event_id FROM outbox WHERE key = 'key-lonely'")
        row = await conn.fetchrow(_CHECK, [lonely], 100_000)
        assert row["present"] == [lonely]
        assert row["behind"] == []
        row = await conn.fetchrow(_CHECK, [lonely], 10_000)
        assert row["behind"] is None
    finally:
        await conn.close()
