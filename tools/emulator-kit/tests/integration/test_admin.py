"""The `/_emulator` routes over HTTP (loopback): JSON in and out, refusals as 400s naming what is wrong, an
emulator's own errors in its shape, the standard fault and request-log routes, the health checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from prizeflow_emulator_kit.admin import Admin, AdminError, req_int
from prizeflow_emulator_kit.clock import Clock
from prizeflow_emulator_kit.faults import FaultKind, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog

pytestmark = pytest.mark.integration  # served on loopback


class ProviderError(Exception):
    pass


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    faults = Faults((FaultKind.RATE_LIMIT,), path_prefixes=("/api",))
    log: RequestLog[RequestEntry] = RequestLog()
    log.record(RequestEntry("POST", "/api/x", status=200))
    log.record(RequestEntry("GET", "/api/y", status=429, fault="rate_limit"))
    admin = Admin(
        errors=lambda err: web.json_response({"ours": str(err)}, status=402) if isinstance(err, ProviderError) else None
    )
    admin.faults(faults)
    admin.requests(log)

    async def double(_request: web.Request, body: dict[str, Any]) -> Any:
        return {"twice": 2 * req_int(body, "n")}

    def refuse(_request: web.Request, _body: dict[str, Any]) -> Any:
        raise ProviderError("no money")

    def conflict(_request: web.Request, _body: dict[str, Any]) -> Any:
        raise AdminError("already settled", status=409)

    admin.route("POST", "/double", double)
    admin.route("POST", "/refuse", refuse)
    admin.route("POST", "/conflict", conflict)
    app = web.Application()
    admin.install(app)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_json_in_and_out_and_refusals_naming_what_is_wrong(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/_emulator/double", json={"n": 21})
    assert (resp.status, await resp.json()) == (200, {"twice": 42})
    for body, message in [({"n": "x"}, "n must be an integer"), ({}, "n is required")]:
        resp = await client.post("/_emulator/double", json=body)
        assert (resp.status, await resp.json()) == (400, {"error": message})
    resp = await client.post("/_emulator/double", data=b"{nope")
    assert (resp.status, await resp.json()) == (400, {"error": "the body is not JSON"})
    resp = await client.post("/_emulator/double", data=b"[1]")
    assert (resp.status, await resp.json()) == (400, {"error": "the body must be a JSON object"})
    resp = await client.post("/_emulator/refuse")
    assert (resp.status, await resp.json()) == (402, {"ours": "no money"})
    resp = await client.post("/_emulator/conflict")
    assert (resp.status, await resp.json()) == (409, {"error": "already settled"})


async def test_the_standard_fault_and_request_routes(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/_emulator/faults", json={"kind": "rate_limit", "count": 2, "method": "post"})
    rule = await resp.json()
    assert (resp.status, rule["kind"], rule["remaining"], rule["method"], rule["path_prefix"]) == (
        200, "rate_limit", 2, "POST", "/api",
    )  # fmt: skip
    resp = await client.post("/_emulator/faults", json={"kind": "server_error"})
    assert resp.status == 400
    assert "kind must be one of" in (await resp.json())["error"]
    assert [r["id"] for r in (await (await client.get("/_emulator/faults")).json())["rules"]] == [rule["id"]]
    assert (await (await client.delete("/_emulator/faults")).json()) == {"status": "cleared"}
    assert (await (await client.get("/_emulator/faults")).json())["rules"] == []
    logged = await (await client.get("/_emulator/requests", params={"method": "get"})).json()
    assert [(r["path"], r["fault"]) for r in logged["requests"]] == [("/api/y", "rate_limit")]
    assert logged["counts"] == {"POST /api/x": 1, "GET /api/y": 1}
    await client.delete("/_emulator/requests")
    assert (await (await client.get("/_emulator/requests")).json())["requests"] == []
    for path in ("/_emulator/health", "/health/live", "/health/ready"):
        resp = await client.get(path)
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})


async def test_the_clock_routes_move_it_and_run_what_came_due() -> None:
    wall = [1000.0]
    clock = Clock(lambda: wall[0])
    moved: list[float] = []
    admin = Admin()
    admin.clock(clock, moved=lambda: moved.append(clock.now()))
    app = web.Application()
    admin.install(app)
    async with TestClient(TestServer(app)) as client:
        assert (await (await client.get("/_emulator/clock")).json())["now"] == 1000.0
        advanced = await client.post("/_emulator/clock/advance", json={"seconds": 7200})
        assert (await advanced.json())["now"] == 8200.0
        assert moved == [8200.0]
        backwards = await client.post("/_emulator/clock/advance", json={"seconds": -1})
        assert (backwards.status, await backwards.json()) == (400, {"error": "seconds must be a number >= 0"})
        frozen = await client.post("/_emulator/clock", json={"frozen": True})
        assert (await frozen.json())["frozen"] is True
        assert (await client.post("/_emulator/clock", json={})).status == 400
