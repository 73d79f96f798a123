"""Path ids are typed parameters: an id by the contracts' rule (matched whole, so never `p-1` and a newline, which a
msgspec pattern lets through), a serial id in ASCII digits within int64 (never a fullwidth digit, a sign, an underscore
or 20 digits, which a `:int` segment took); anything else is a 400 problem naming the parameter, before the handler."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from litestar import get
from litestar.testing import TestClient
from prometheus_client import CollectorRegistry

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.http import PUBLIC, create_app
from prizeflow_runtime.params import CheckedIdentifier, CheckedSerial, IdentifierPath, SerialPath

CALLS: list[object] = []


@get("/things/{thing_id:str}", opt=PUBLIC)
async def thing(thing_id: IdentifierPath) -> dict[str, Any]:
    CALLS.append(thing_id)
    return {"id": thing_id, "checked": isinstance(thing_id, CheckedIdentifier)}


@get("/rows/{row_id:str}", opt=PUBLIC)
async def row(row_id: SerialPath) -> dict[str, Any]:
    CALLS.append(row_id)
    return {"id": row_id, "checked": isinstance(row_id, CheckedSerial)}


@pytest.fixture(scope="module")
def client() -> Any:
    app = create_app(service_name="params-test", route_handlers=[thing, row], registry=CollectorRegistry())
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("value", ["r-1", "A", "round:2024.01_x", "p" * 128])
def test_an_id_reaches_the_handler_as_sent(client: TestClient[Any], value: str) -> None:
    answer = client.get(f"/things/{quote(value, safe='')}")
    assert answer.json() == {"id": value, "checked": True}


@pytest.mark.parametrize(
    "value",
    ["=1+2", "+cmd", "@SUM(1)", "-1+1", "p-1\n", "p\r\nx", "p\x00", "p\t1", "p" * 129, "p" * 10_240, "p\u0430y",
     "\uff11\uff12", "..", ".x", "p 1", "_x"],
)  # fmt: skip
def test_anything_else_is_a_problem_naming_the_parameter(client: TestClient[Any], value: str) -> None:
    CALLS.clear()
    answer = client.get(f"/things/{quote(value, safe='').replace('.', '%2E')}")
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["code"] == "validation_error"
    assert [(e["key"], e["source"]) for e in body["errors"]] == [("thing_id", "path")]
    assert CALLS == []


@pytest.mark.parametrize("value", ["1", "42", str(2**63 - 1)])
def test_a_serial_id_reaches_the_handler_as_a_number(client: TestClient[Any], value: str) -> None:
    assert client.get(f"/rows/{value}").json() == {"id": int(value), "checked": True}


@pytest.mark.parametrize(
    "value", ["0", "-1", "+1", "1_0", "01", " 1", "1\n", "\uff11", str(2**63), "9" * 20, "x", "1.0"]
)
def test_a_serial_id_is_ascii_digits_within_int64(client: TestClient[Any], value: str) -> None:
    CALLS.clear()
    answer = client.get(f"/rows/{quote(value, safe='')}")
    assert answer.status_code == 400
    assert [e["key"] for e in answer.json()["errors"]] == ["row_id"]
    assert CALLS == []


def test_the_openapi_document_states_the_rules(client: TestClient[Any]) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    (thing_param,) = paths["/things/{thing_id}"]["get"]["parameters"]
    assert thing_param["schema"]["type"] == "string"
    assert thing_param["schema"]["pattern"] == IDENTIFIER_PATTERN
    assert thing_param["schema"]["maxLength"] == 128
    (row_param,) = paths["/rows/{row_id}"]["get"]["parameters"]
    assert (row_param["schema"]["type"], row_param["schema"]["minimum"]) == ("integer", 1)
    assert row_param["schema"]["maximum"] == 2**63 - 1
