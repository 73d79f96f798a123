"""What the hostile walks share (`tests/adversarial/test_hostile_*.py`): the services' OpenAPI documents read as
schemas, paths filled, requests sent a few at a time, and every table's row count, before and after."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

from prizeflow_devstack.platform import Platform
from prizeflow_testkit.db import fetch

APIS = ("settlement", "rewards", "payouts", "webhooks", "signer")
DATABASES = ("settlement", "rewards", "payouts", "signer", "webhooks", "console")
ROLES = ("admin", "ops", "approver", "player")
SAFE = {"string": "x-1", "integer": "1"}
POOL = 4


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    return schema


def variants(doc: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = resolve(doc, schema)
    inner = schema.get("anyOf") or schema.get("oneOf")
    return [v for s in inner for v in variants(doc, s)] if inner else [schema]


Property = tuple[list[str | int], str, dict[str, Any]]


def properties(
    doc: dict[str, Any], schema: dict[str, Any], *, items: bool = False, depth: int = 0
) -> Iterator[Property]:
    """Every property of a body schema, objects and arrays in: where it sits in a body, its name and its schema
    (with `items`, each array's items too, at `[name, 0]` under the array's name)."""
    if depth > 4:
        return
    for variant in variants(doc, schema):
        for name, sub in (variant.get("properties") or {}).items():
            yield [name], name, sub
            for s in variants(doc, sub):
                if s.get("type") == "object":
                    for where, leaf, inner in properties(doc, s, items=items, depth=depth + 1):
                        yield [name, *where], leaf, inner
                elif s.get("type") == "array" and isinstance(s.get("items"), dict):
                    if items:
                        yield [name, 0], name, s["items"]
                    for where, leaf, inner in properties(doc, s["items"], items=items, depth=depth + 1):
                        yield [name, 0, *where], leaf, inner


def segment(value: str) -> str:
    """`value` as one path segment, dots too: a client would resolve a bare `..` into another route."""
    return quote(value, safe="").replace(".", "%2E")


def fill(path: str, params: list[dict[str, Any]], hostile: tuple[str, str] | None = None) -> str:
    for p in params:
        kind = "integer" if p.get("schema", {}).get("type") == "integer" else "string"
        value = hostile[1] if hostile and hostile[0] == p["name"] else SAFE[kind]
        path = path.replace("{" + p["name"] + "}", segment(value))
    return path


async def row_counts(platform: Platform) -> dict[str, int]:
    """Every table's exact row count, in every service's database (one query each)."""
    counts: dict[str, int] = {}
    for service in DATABASES:
        rows = await fetch(
            platform.procs[service].database_url or "",
            """SELECT table_schema || '.' || table_name AS name,
                      (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
                       table_schema, table_name), false, true, '')))[1]::text::bigint AS n
                 FROM information_schema.tables
                WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')""",
        )
        counts.update({f"{service}:{r['name']}": int(r["n"]) for r in rows})
    return counts


async def quiet_counts(platform: Platform, deadline_s: float = 60.0) -> dict[str, int]:
    """The counts once two readings a second apart agree (what earlier tests set moving has settled)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    last = await row_counts(platform)
    while True:
        await asyncio.sleep(1.0)  # the interval between two readings, not a wait for an effect
        now = await row_counts(platform)
        if now == last or loop.time() > end:
            return now
        last = now


def changed(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Tables whose rows changed (a partition created meanwhile, still empty, is no change)."""
    names = set(before) | set(after)
    return {n: (before.get(n, 0), after.get(n, 0)) for n in names if before.get(n, 0) != after.get(n, 0)}


async def send_all(cases: list[dict[str, Any]], send: Callable[[dict[str, Any]], Awaitable[str | None]]) -> list[str]:
    gate = asyncio.Semaphore(POOL)

    async def one(case: dict[str, Any]) -> str | None:
        async with gate:
            wrong = await send(case)
        if wrong is None:
            return None
        return f"{case['service']} {case['method']} {case['path'][:80]} {case['field']}={case['label']}: {wrong}"

    return [w for w in await asyncio.gather(*(one(c) for c in cases)) if w is not None]


__all__ = [
    "APIS", "DATABASES", "POOL", "ROLES", "SAFE", "Property", "changed", "fill", "properties", "quiet_counts",
    "resolve", "row_counts", "segment", "send_all", "variants",
]  # fmt: skip
