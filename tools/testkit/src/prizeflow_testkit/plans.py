"""The plan a prepared statement settles on, for tests that hold a statement to its shape on stale statistics.

asyncpg prepares every statement, and PostgreSQL's plan cache keeps a *generic* plan after a statement's fifth run
when it looks no dearer than the custom ones: planned without the parameters' values, on whatever statistics the
table had when last analysed. A statement that takes a batch's ids beside a state that swings between a quiet spell
and a burst can then compare every matching row with every id (docs/capacity.md, "The plan audit"). `generic_plan`
gives that plan, run (`EXPLAIN ANALYZE`) and rolled back; the other helpers read what it did."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg


def array_literal(items: Iterable[object]) -> str:
    """`items` as a SQL array literal (`'{a,b}'`), for EXECUTE's arguments (test values: no quoting inside)."""
    return "'{" + ",".join(str(i) for i in items) + "}'"


async def generic_plan(conn: asyncpg.Connection, sql: str, args: Mapping[str, str] | Sequence[str]) -> dict[str, Any]:
    """The root node of `sql`'s generic plan, explained with `ANALYZE` in a transaction rolled back (nothing it
    wrote, nor the prepared statement, is kept). `args` are SQL literals: by name for a statement with `:name`
    parameters (numbered in `args`' order, as the driver prepares them), or in order for one already numbered."""
    if isinstance(args, Mapping):
        names = [n for n in args if f":{n}" in sql]
        for i, name in enumerate(names, 1):
            sql = sql.replace(f":{name}", f"${i}")
        values = [args[n] for n in names]
    else:
        values = list(args)
    tr = conn.transaction()
    await tr.start()
    try:
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE generic_plan AS {sql}")
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE generic_plan({', '.join(values)})")
    finally:
        await tr.rollback()
    doc = json.loads(plan) if isinstance(plan, str) else plan
    return dict(doc[0]["Plan"])


def rows_thrown_away(node: Mapping[str, Any]) -> int:
    """Rows a scan or join read and then threw away, over all its loops: a rows x ids plan shows here."""
    loops = int(node.get("Actual Loops", 1))
    own = (int(node.get("Rows Removed by Filter", 0)) + int(node.get("Rows Removed by Join Filter", 0))) * loops
    return own + sum(rows_thrown_away(child) for child in node.get("Plans", []))


def most_rows_read(node: Mapping[str, Any], relation: str) -> int:
    """The most rows any one node of the plan read from `relation` (a sort of a whole backlog shows here)."""
    own = int(node.get("Actual Rows", 0)) if node.get("Relation Name") == relation else 0
    return max([own, *(most_rows_read(child, relation) for child in node.get("Plans", []))])


__all__ = ["array_literal", "generic_plan", "most_rows_read", "rows_thrown_away"]
