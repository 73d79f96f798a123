"""Every query parameter and every string of a JSON body passes one guard before a handler runs (issue 56, class 6):
control characters, bidirectional controls and lone surrogates are refused with a 400 problem naming the field, a
query parameter is at most 512 characters, an integer one is ASCII digits within int64. A body's free text may hold
lines; what a client writes as a correct value reaches the handler as sent."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import pytest
from litestar import get, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field

from prizeflow_runtime.http import PUBLIC, create_app
from prizeflow_runtime.input_guard import MAX_QUERY_CHARS, hostile_strings

CALLS: list[object] = []


class Line(BaseModel):
    note: str


class Body(BaseModel):
    reason: Annotated[str, Field(max_length=20_000)] = "r"
    lines: list[Line] = []
    tags: dict[str, str] = {}


@get("/items", opt=PUBLIC)
async def items(
    q: FromQuery[str | None] = None,
    after: FromQuery[int | None] = None,
    limit: FromQuery[int] = 10,
    older: Annotated[int | None, QueryParameter(name="older_than_s")] = None,
) -> dict[str, Any]:
    CALLS.append((q, after, limit, older))
    return {"q": q, "after": after, "limit": limit, "older": older}


@post("/items/{item_id:str}/notes", opt=PUBLIC)
async def note(item_id: FromPath[str], data: JSONBody[Body]) -> dict[str, Any]:
    CALLS.append(data)
    return data.model_dump()


@pytest.fixture(scope="module")
def client() -> Any:
    app = create_app(service_name="guard-test", route_handlers=[items, note], registry=CollectorRegistry())
    with TestClient(app) as c:
        yield c


HOSTILE = {
    "nul": "a\x00b",
    "escape": "a\x1b[31mb",
    "del": "a\x7fb",
    "c1": "a\x85b",
    "rtl_override": "a\u202eb",
    "isolate": "a\u2066b",
    "embedding": "a\u202bb",
}


def _problem(answer: Any) -> list[tuple[str, str]]:
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return [(e["key"], e["source"]) for e in answer.json()["errors"]]


@pytest.mark.parametrize("value", [*HOSTILE.values(), "a\tb", "a\nb", "a" * (MAX_QUERY_CHARS + 1)])
def test_a_hostile_query_parameter_is_refused_naming_it(client: TestClient[Any], value: str) -> None:
    CALLS.clear()
    assert _problem(client.get("/items", params={"q": value})) == [("q", "query")]
    assert CALLS == []


@pytest.mark.parametrize("value", ["1e3", "1.5", "0x10", "\uff11", "1_0", "+1 ", "NaN", str(2**63), "9" * 20, ""])
@pytest.mark.parametrize("name", ["after", "limit", "older_than_s"])
def test_an_integer_query_parameter_is_ascii_digits_within_int64(
    client: TestClient[Any], name: str, value: str
) -> None:
    CALLS.clear()
    assert _problem(client.get("/items", params={name: value})) == [(name, "query")]
    assert CALLS == []


def test_correct_query_parameters_reach_the_handler_as_sent(client: TestClient[Any]) -> None:
    params = {"q": "caf\u00e9 \u0928\u092e\u0938\u094d\u0924\u0947", "after": str(2**63 - 1), "older_than_s": "-5"}
    answer = client.get("/items", params={**params, "limit": "7"})
    assert answer.json() == {"q": params["q"], "after": 2**63 - 1, "limit": 7, "older": -5}


@pytest.mark.parametrize("label", list(HOSTILE))
@pytest.mark.parametrize(
    ("where", "key"),
    [
        (lambda v: {"reason": v}, "reason"),
        (lambda v: {"lines": [{"note": "ok"}, {"note": v}]}, "lines.1.note"),
        (lambda v: {"tags": {"k": v}}, "tags.k"),
    ],
)
def test_a_hostile_string_anywhere_in_a_body_is_refused_naming_it(
    client: TestClient[Any], label: str, where: Any, key: str
) -> None:
    CALLS.clear()
    answer = client.post("/items/i-1/notes", content=json.dumps(where(HOSTILE[label])))
    assert _problem(answer) == [(key, "body")]
    assert HOSTILE[label] not in answer.text  # the value is not echoed back
    assert CALLS == []


def test_a_lone_surrogate_and_a_hostile_key_are_refused(client: TestClient[Any]) -> None:
    CALLS.clear()
    surrogate = client.post("/items/i-1/notes", content=b'{"reason": "a\\ud800b"}')
    assert surrogate.status_code == 400  # no JSON text of UTF-8 holds one: the body is refused whole
    key = client.post("/items/i-1/notes", content=b'{"tags": {"a\\u0000": "x"}}')
    assert _problem(key) == [("tags", "body")]  # named by its object: the hostile key is not echoed
    assert "\\u0000" not in key.text
    assert CALLS == []


def test_a_body_hostile_in_one_field_and_missing_another_names_the_hostile_one(client: TestClient[Any]) -> None:
    assert _problem(client.post("/items/i-1/notes", content=json.dumps({"lines": [{"note": "a\x00"}, {}]}))) == [
        ("lines.0.note", "body")
    ]


def test_free_text_keeps_its_lines_tabs_and_every_script(client: TestClient[Any]) -> None:
    # The implicit direction marks a phone's keyboard writes into right-to-left text (RLM, LRM, ALM) pass.
    text = (
        "line one\r\n\tline two \u2014 \u0928\u092e\u0938\u094d\u0924\u0947 \u0645\u0631\u062d\u0628\u0627\u200f "
        "\u200e\u061c\U0001f600"
    )
    assert client.post("/items/i-1/notes", content=json.dumps({"reason": text})).json()["reason"] == text


def test_hostile_strings_are_found_where_they_sit() -> None:
    value = {"a": ["ok", "x\x00"], "b": {"c": "\u202e"}, "d": 1}
    assert [w for w, _ in hostile_strings(value)] == [("a", 1), ("b", "c")]


def test_a_path_parameter_is_left_to_its_own_type(client: TestClient[Any]) -> None:
    # A path segment is checked by its parameter's type (prizeflow_runtime.params), not by the query guard.
    assert client.post(f"/items/{quote('x y', safe='')}/notes", content="{}").status_code == 201
