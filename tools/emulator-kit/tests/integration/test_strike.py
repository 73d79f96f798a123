"""How a scripted fault strikes a call, over loopback HTTP: before processing nothing is carried out; after, the
call is carried out and only a successful answer is cut, refused or held back; the request log shows it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import RESET_STATUS, strike

pytestmark = pytest.mark.integration  # served on loopback


class Books:
    def __init__(self) -> None:
        self.faults = Faults(list(FaultKind), path_prefixes=("/api",), delay_ms=5_000)
        self.log: RequestLog[RequestEntry] = RequestLog()
        self.done: list[str] = []


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Books, TestClient[Any, Any]]]:
    books = Books()

    def refuse(rule: FaultRule) -> web.Response:
        status = {FaultKind.RATE_LIMIT: 429, FaultKind.SERVER_ERROR_AFTER_SUCCESS: 502}.get(rule.kind, 500)
        return web.json_response({"refused": rule.kind.value}, status=status)

    async def api(request: web.Request) -> web.StreamResponse:
        entry = books.log.record(RequestEntry(request.method, request.path))

        async def carry_out() -> web.StreamResponse:
            if request.match_info["what"] == "missing":
                return web.json_response({"error": "no such thing"}, status=404)
            books.done.append(request.match_info["what"])
            return web.json_response({"done": request.match_info["what"]})

        return await strike(books.faults.take(request.method, request.path), request, carry_out, refuse, entry)

    app = web.Application()
    app.router.add_route("*", "/api/{what}", api)
    async with TestClient(TestServer(app)) as client:
        yield books, client


async def test_before_processing_nothing_is_carried_out(rig: tuple[Books, TestClient[Any, Any]]) -> None:
    books, client = rig
    books.faults.add("rate_limit")
    books.faults.add("connection_reset")
    resp = await client.post("/api/a")
    assert (resp.status, await resp.json()) == (429, {"refused": "rate_limit"})
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/api/b")
    assert (await client.post("/api/c")).status == 200
    assert books.done == ["c"]
    assert [(e.status, e.fault) for e in books.log] == [
        (429, "rate_limit"),
        (RESET_STATUS, "connection_reset"),
        (200, None),
    ]


async def test_after_processing_the_call_is_carried_out_then_its_answer_goes_wrong(
    rig: tuple[Books, TestClient[Any, Any]],
) -> None:
    books, client = rig
    books.faults.add("server_error_after_success")
    books.faults.add("drop_after_success")
    books.faults.add("timeout_after_success", delay_ms=2_000)
    resp = await client.post("/api/a")
    assert (resp.status, await resp.json()) == (502, {"refused": "server_error_after_success"})
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.post("/api/b")
    with pytest.raises(asyncio.TimeoutError):
        await client.post("/api/c", timeout=aiohttp.ClientTimeout(total=0.3))
    assert books.done == ["a", "b", "c"]
    assert [e.fault for e in books.log] == ["server_error_after_success", "drop_after_success", "timeout_after_success"]
    assert [e.status for e in books.log][:2] == [502, RESET_STATUS]


async def test_an_answer_that_failed_anyway_is_not_struck_after(rig: tuple[Books, TestClient[Any, Any]]) -> None:
    books, client = rig
    books.faults.add("drop_after_success")
    resp = await client.post("/api/missing")
    assert (resp.status, await resp.json()) == (404, {"error": "no such thing"})
    (entry,) = books.log
    assert (entry.status, entry.fault) == (404, None)
