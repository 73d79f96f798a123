"""`/_emulator/...`: every emulator's test controls, as JSON, under one prefix. Test control only: emulators bind
to 127.0.0.1 by default and these routes have no authentication.

A handler takes the request and its JSON object body (`{}` when there is none) and returns what to answer: a
JSON-able value (200) or a response of its own. A bad input is a 400 `{"error": "<what is wrong>"}`: an
`AdminError`, or a ValueError, KeyError or TypeError raised reading the body; an emulator maps its own errors to
its API's error shape (`errors`). The standard routes: `health`, `faults` (scripted or knobs), `requests`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.clock import Clock
from prizeflow_emulator_kit.faults import Faults, Knobs
from prizeflow_emulator_kit.requests import RequestLog

PREFIX = "/_emulator"

JsonHandler = Callable[[web.Request, dict[str, Any]], Any]
ErrorAnswer = Callable[[Exception], web.StreamResponse | None]
"""An emulator's answer to one of its own errors raised by a handler; None: not one of its errors."""


class AdminError(Exception):
    """A refused admin call: `status` and a message naming what is wrong."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Admin:
    def __init__(
        self,
        *,
        errors: ErrorAnswer | None = None,
        dumps: Callable[[Any], str] = json.dumps,
        health: Callable[[], Any] | None = None,
    ) -> None:
        self._errors = errors
        self._dumps = dumps
        self._health = health or (lambda: {"status": "ok"})
        self.routes: list[tuple[str, str, JsonHandler]] = []

    def route(self, method: str, path: str, handler: JsonHandler) -> None:
        """`method PREFIX+path` answered by `handler`."""
        self.routes.append((method, PREFIX + path, handler))

    def faults(self, faults: Faults, *, add: JsonHandler | None = None) -> None:
        """`GET /faults` (rules and what struck), `POST /faults` (arm one: kind, method, path_prefix, count,
        delay_ms; or the emulator's own `add`), `DELETE /faults` (disarm all)."""

        def arm(_request: web.Request, body: dict[str, Any]) -> Any:
            count = opt_int(body, "count")
            return faults.add(
                req_str(body, "kind"),
                method=opt_str(body, "method") or "*",
                path_prefix=opt_str(body, "path_prefix"),
                count=1 if count is None else count,
                delay_ms=opt_int(body, "delay_ms"),
            ).to_json()

        def clear(_request: web.Request, _body: dict[str, Any]) -> Any:
            faults.clear()
            return {"status": "cleared"}

        self.route("GET", "/faults", lambda _r, _b: faults.to_json())
        self.route("POST", "/faults", add or arm)
        self.route("DELETE", "/faults", clear)

    def knobs(self, current: Callable[[], Knobs]) -> None:
        """`GET /faults` (the knobs in force), `POST /faults` (any subset of them: all checked, then applied)."""
        self.route("GET", "/faults", lambda _r, _b: current().to_json())
        self.route("POST", "/faults", lambda _r, body: current().update(body).to_json())

    def requests(self, log: RequestLog[Any]) -> None:
        """`GET /requests?method=&path=` (the calls, and counts per method and path), `DELETE /requests`."""

        def get(request: web.Request, _body: dict[str, Any]) -> Any:
            return log.to_json(method=request.query.get("method"), path=request.query.get("path"))

        def clear(_request: web.Request, _body: dict[str, Any]) -> Any:
            log.clear()
            return {"status": "cleared"}

        self.route("GET", "/requests", get)
        self.route("DELETE", "/requests", clear)

    def clock(self, clock: Clock, *, moved: Callable[[], Any] | None = None) -> None:
        """`GET /clock`, `POST /clock/advance {seconds}` (forward only), `POST /clock {frozen}`. `moved` runs after
        every change, before the answer: what came due is done by the time the test reads the emulator again."""

        def changed() -> Any:
            if moved is not None:
                moved()
            return clock.to_json()

        def advance(_request: web.Request, body: dict[str, Any]) -> Any:
            seconds = body.get("seconds")
            if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
                raise AdminError("seconds must be a number >= 0")
            clock.advance(seconds)
            return changed()

        def freeze(_request: web.Request, body: dict[str, Any]) -> Any:
            frozen = opt_bool(body, "frozen")
            if frozen is None:
                raise AdminError("frozen is required")
            clock.freeze(frozen=frozen)
            return changed()

        self.route("GET", "/clock", lambda _r, _b: clock.to_json())
        self.route("POST", "/clock/advance", advance)
        self.route("POST", "/clock", freeze)

    def install(self, app: web.Application) -> None:
        """The routes, and the health checks (`/_emulator/health`, and `/health/live` and `/health/ready` that the
        devstack's supervisor and the containers wait on)."""
        for method, path, handler in self.routes:
            app.router.add_route(method, path, self._wrap(handler))

        async def health(_request: web.Request) -> web.StreamResponse:
            return self._answer(self._health())

        for path in (PREFIX + "/health", "/health/live", "/health/ready"):
            app.router.add_get(path, health)

    def _wrap(self, handler: JsonHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            try:
                result = handler(request, await _body(request))
                if inspect.isawaitable(result):
                    result = await result
            except AdminError as err:
                return web.json_response({"error": err.message}, status=err.status)
            except Exception as err:
                answer = self._errors(err) if self._errors is not None else None
                if answer is not None:
                    return answer
                if isinstance(err, ValueError | TypeError):
                    return web.json_response({"error": str(err)}, status=400)
                if isinstance(err, KeyError):
                    return web.json_response({"error": f"{err.args[0]} is required"}, status=400)
                raise
            return self._answer(result)

        return wrapped

    def _answer(self, result: Any) -> web.StreamResponse:
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(text=self._dumps(result), content_type="application/json")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise AdminError("the body is not JSON") from None
    if not isinstance(doc, dict):
        raise AdminError("the body must be a JSON object")
    return doc


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{name} must be a string")
    return value


def req_str(body: dict[str, Any], name: str) -> str:
    value = opt_str(body, name)
    if not value:
        raise AdminError(f"{name} is required")
    return value


def opt_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise AdminError(f"{name} must be an integer")
    return value


def req_int(body: dict[str, Any], name: str) -> int:
    value = opt_int(body, name)
    if value is None:
        raise AdminError(f"{name} is required")
    return value


def opt_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise AdminError(f"{name} must be a boolean")
    return value


__all__ = [
    "PREFIX",
    "Admin",
    "AdminError",
    "ErrorAnswer",
    "JsonHandler",
    "opt_bool",
    "opt_int",
    "opt_str",
    "req_int",
    "req_str",
]
