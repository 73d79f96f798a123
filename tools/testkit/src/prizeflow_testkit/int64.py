"""Money fields across the int64 edges, through a live HTTP boundary (a property test per service).

`beyond_int64()` draws integers a BIGINT column cannot hold (its edges first: ±2^63, 2^63+1, -2^63-1, 10^40...);
`drive` runs a property over them against an app that lives in the test's event loop: hypothesis runs in a worker
thread and hands each example to the loop, so one app (one database, one broker connection) serves every example.
`body_with` puts a value at a path of a JSON body, as raw JSON text, so that `-0` and integers of any size are sent
exactly as written (never through a float).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
EDGES: Final = (2**63, 2**63 + 1, INT64_MIN - 1, INT64_MIN - 2, 2**64, 10**40, -(10**40))


def beyond_int64() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGES), st.integers(min_value=INT64_MAX + 1), st.integers(max_value=INT64_MIN - 1))


async def drive(check: Callable[[int], Coroutine[Any, Any, None]], *, examples: int = 10) -> None:
    """`check(value)` for the edges and `examples` more values beyond int64, each awaited in this event loop."""
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(beyond_int64())
    def run(value: int) -> None:
        asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=120)

    def edges_then_run() -> None:
        for value in EDGES:  # always, whatever hypothesis draws
            asyncio.run_coroutine_threadsafe(check(value), loop).result(timeout=120)
        run()

    await asyncio.to_thread(edges_then_run)


def body_with(template: dict[str, Any], path: Sequence[str], raw: str) -> str:
    """`template` as JSON text with the value at `path` replaced by the raw JSON `raw` (e.g. "-0", "1e40")."""
    marker = "__int64_probe__"
    doc = json.loads(json.dumps(template))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = marker
    return json.dumps(doc).replace(f'"{marker}"', raw)


def names_field(problem: dict[str, Any], field: str) -> bool:
    """Whether a validation problem names `field` (in its `errors`, or its detail)."""
    keys = [str(e.get("key", "")) for e in problem.get("errors", []) if isinstance(e, dict)]
    return any(k == field or k.endswith(f".{field}") for k in keys) or field in str(problem.get("detail", ""))


__all__ = ["EDGES", "INT64_MAX", "INT64_MIN", "beyond_int64", "body_with", "drive", "names_field"]
