"""Every field of every JSON body and every query parameter of every route in each service's own OpenAPI document,
hostile by its type: a string with a NUL, an escape sequence, a right-to-left override or 10 kB, or of another JSON
type; an integer sent as a string, a fraction, a boolean, negative zero, NaN or Infinity (JSON has neither: a client
that writes them writes what Python's `json` does); a boolean as a string or a number. Each is refused with a 4xx
problem naming the field, and no service's database changes. (`test_hostile_identifiers.py` walks the ids.)

Free text may hold a formula (`=1+2` is a reason a person may type): every CSV export neutralizes it
(`prizeflow_runtime.csv_stream`), so formulas are an id's hostile value, not a text's.

The routes come from the documents, not a list here: a field or a parameter added tomorrow is attacked too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from support import Api
from walk import APIS, ROLES, changed, fill, properties, quiet_counts, row_counts, send_all, variants

from prizeflow_devstack.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ACTOR = "hostile-fields"
NAN, INF = float("nan"), float("inf")
# Hostile to any string, free text included: what a terminal, a log line or a bidi-rendering page takes as an order.
TEXT = {"nul": "a\x00b", "escape": "a\x1b[31mb", "rtl_override": "a\u202eb", "ten_kb": "a" * 10_240}
BY_TYPE: dict[str, dict[str, Any]] = {
    "string": {**TEXT, "int": 1, "bool": True, "list": ["a"], "object": {"a": 1}},
    "integer": {
        "string": "1",
        "fraction": 1.5,
        "bool": True,
        "negative_zero": -0.0,
        "nan": NAN,
        "infinity": INF,
        "past_int64": 2**64,
    },
    "number": {"string": "1", "bool": True, "nan": NAN, "infinity": INF},
    "boolean": {"string": "true", "int": 1},
}
QUERY_BY_TYPE: dict[str, dict[str, str]] = {
    "string": {**TEXT},
    "integer": {
        "fraction": "1.5",
        "nan": "NaN",
        "infinity": "Infinity",
        "exponent": "1e3",
        "hex": "0x10",
        "fullwidth": "\uff11",
        "underscore": "1_0",
        "past_int64": "9" * 20,
    },
    "boolean": {"word": "maybe", "int": "2"},
}
# A value the schema's type admits, for the parameters a case does not attack.
SAFE_QUERY = {"string": "x-1", "integer": "1", "boolean": "true"}


def _type(doc: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The JSON type a field takes (None: several, or none said: not attacked by type)."""
    kinds = {v.get("type") for v in variants(doc, schema)} - {"null", None}
    return kinds.pop() if len(kinds) == 1 else None


Field = tuple[list[str | int], str, str, int | None]


def _fields(doc: dict[str, Any], schema: dict[str, Any]) -> Iterator[Field]:
    """Every scalar field of a body schema (an array's scalar items too): where it sits, its name, its JSON type and
    the longest string it admits (None: not said); objects and arrays in."""
    for where, name, sub in properties(doc, schema, items=True):
        kind = _type(doc, sub)
        if kind in BY_TYPE:
            longest = [v["maxLength"] for v in variants(doc, sub) if isinstance(v.get("maxLength"), int)]
            yield where, name, kind, max(longest, default=None)


def _body(where: list[str | int], value: Any) -> Any:
    head, *rest = where
    inner = value if not rest else _body(rest, value)
    return [inner] if isinstance(head, int) else {head: inner}


def _cases(service: str, doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for template, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            path = fill(template, [p for p in op.get("parameters", []) if p.get("in") == "path"])
            query = [p for p in op.get("parameters", []) if p.get("in") == "query"]
            for p in query:
                kind = _type(doc, p.get("schema", {})) or "string"
                for label, value in QUERY_BY_TYPE.get(kind, QUERY_BY_TYPE["string"]).items():
                    params = {q["name"]: SAFE_QUERY.get(_type(doc, q.get("schema", {})) or "string", "x-1")
                              for q in query if q.get("required")}  # fmt: skip
                    params[p["name"]] = value
                    yield {"service": service, "method": method.upper(), "path": path, "params": params,
                           "content": None, "field": p["name"], "label": f"query {label}"}  # fmt: skip
            content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
            if content is None:
                continue
            for where, leaf, kind, longest in _fields(doc, content["schema"]):
                for label, hostile in BY_TYPE[kind].items():
                    # A field long by design (an envelope) is attacked past its own limit.
                    long_by_design = label == "ten_kb" and longest is not None and longest >= len(hostile)
                    value = "a" * (longest + 1) if long_by_design and longest is not None else hostile
                    yield {"service": service, "method": method.upper(), "path": path, "params": None,
                           "content": json.dumps(_body(where, value)),  # NaN, Infinity as Python writes them
                           "field": leaf, "label": label}  # fmt: skip


def _names(text: str) -> list[str]:
    try:
        errors = json.loads(text).get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [str(e.get("key", "")).rsplit(".", 1)[-1] for e in errors if isinstance(e, dict)]


async def test_every_field_and_query_parameter_refuses_hostile_values_naming_it_and_writes_nothing(
    platform: Platform, api: Api
) -> None:
    docs = {s: (await api.http.get(platform.url(s) + "/schema/openapi.json")).raise_for_status().json() for s in APIS}
    cases = [c for service, doc in docs.items() for c in _cases(service, doc)]
    fields = {(c["service"], c["field"]) for c in cases}
    # The walk reaches more than ids: amounts, reasons, flags, filters and limits.
    assert {("rewards", "amount"), ("payouts", "reason"), ("rewards", "flagged"), ("payouts", "limit")} <= fields, (
        sorted(fields)
    )
    assert len(cases) > 500, len(cases)
    headers = {s: api.token(ACTOR, *ROLES, service=s) for s in APIS}

    async def send(case: dict[str, Any]) -> str | None:
        answer = await api.http.request(
            case["method"],
            platform.url(case["service"]) + case["path"],
            params=case["params"],
            content=case["content"],
            headers={**headers[case["service"]], "content-type": "application/json"},
        )
        media = answer.headers.get("content-type", "")
        if not (400 <= answer.status_code < 500 and media.startswith("application/problem+json")):
            return f"{answer.status_code} {media} {answer.text[:160]!r}"
        # A body JSON cannot parse (NaN, Infinity) is refused whole: there is no field to name.
        unparsed = case["label"] in ("nan", "infinity") and answer.status_code == 400 and not _names(answer.text)
        if not unparsed and case["field"] not in _names(answer.text):
            return f"{answer.status_code} does not name {case['field']}: {answer.text[:200]!r}"
        return None

    before = await quiet_counts(platform)
    wrong = await send_all(cases, send)
    after = await row_counts(platform)
    assert wrong == [], f"{len(wrong)} of {len(cases)} not refused as they should be:\n" + "\n".join(wrong[:300])
    assert changed(before, after) == {}
