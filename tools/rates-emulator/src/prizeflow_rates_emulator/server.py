"""The emulator's aiohttp app: `/api` (Open Exchange Rates' latest, historical and currencies routes, `app_id`
auth, faults) and `/_emulator` (admin: the clock, the market, the schedule, staleness)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError, opt_bool, opt_int, req_str
from prizeflow_emulator_kit.clock import Clock
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_rates_emulator.board import CURRENCIES, Board, Snapshot, parse_rate, parse_rates, text
from prizeflow_rates_emulator.settings import EmulatorSettings

log = logging.getLogger(__name__)
API: Final = "/api"
TICK_S: Final = 0.05
DISCLAIMER: Final = "Usage subject to terms: https://openexchangerates.org/terms"
SIGN_UP: Final = "please sign up at https://openexchangerates.org/signup, or contact support@openexchangerates.org."
NOT_AVAILABLE: Final = "Historical rates for the requested date are not available - please try a different date."
NOT_ALLOWED: Final = (
    "Changing the API `base` currency is available for Developer, Enterprise and Unlimited plan clients. Please "
    "upgrade, or contact support@openexchangerates.org with any questions."
)
LICENSE: Final = "https://openexchangerates.org/license"
FAULT_KINDS: Final = (
    FaultKind.CONNECTION_RESET,
    FaultKind.RATE_LIMIT,  # 429 access_restricted
    FaultKind.SERVER_ERROR,  # 500
    FaultKind.OUTAGE,  # 502 from the load balancer (HTML)
    FaultKind.TIMEOUT_AFTER_SUCCESS,
    FaultKind.DROP_AFTER_SUCCESS,
)


class OxrError(Exception):
    """Open Exchange Rates' error: `{"error": true, "status", "message", "description"}` (docs: reference/errors)."""

    def __init__(self, status: int, message: str, description: str) -> None:
        super().__init__(description)
        self.status, self.message, self.description = status, message, description

    def response(self) -> web.Response:
        body = {"error": True, "status": self.status, "message": self.message, "description": self.description}
        return web.json_response(body, status=self.status)


@dataclass
class RatesRequest(RequestEntry):
    base: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.clock = Clock()
        self.faults = Faults(FAULT_KINDS, path_prefixes=(API,))
        self.requests: RequestLog[RatesRequest] = RequestLog()
        self.board = self._new_board()
        self._ticker: asyncio.Task[None] | None = None

    def _new_board(self) -> Board:
        s = self.settings
        rng = random.Random(s.seed)  # noqa: S311 - a market's random walk, not cryptography
        return Board(s.rates, interval_s=s.publish_s, now=self.clock.now(), drift_bps=s.drift_bps, rng=rng)

    def reset(self) -> None:
        self.clock.reset()
        self.faults.reset()
        self.requests.clear()
        self.board = self._new_board()

    def tick(self) -> None:
        self.board.tick(self.clock.now())

    async def start(self, _app: web.Application | None = None) -> None:
        self._ticker = asyncio.create_task(self._tick(), name="rates-publisher")

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)  # the publisher's pace, not synchronisation
            try:
                self.tick()
            except Exception:
                log.exception("publishing rates failed")


EMULATOR_KEY: Final = web.AppKey("emulator", Emulator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- /api -------------------------------------------------------------------------------------------------------------
@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        return await handler(request)
    em = request.app[EMULATOR_KEY]
    entry = em.requests.record(RatesRequest(request.method, request.path, base=request.query.get("base")))
    if not request.path.endswith("/currencies.json"):  # OXR serves the currency list without an App ID
        failure = _auth_failure(em, request)
        if failure is not None:
            entry.status = failure.status
            return failure.response()

    async def carry_out() -> web.StreamResponse:
        try:
            return await handler(request)
        except OxrError as err:
            return err.response()

    return await strike(em.faults.take(request.method, request.path), request, carry_out, _refusal, entry)


def _auth_failure(em: Emulator, request: web.Request) -> OxrError | None:
    """`app_id` in the query, or `Authorization: Token <app_id>`."""
    header = request.headers.get("Authorization", "")
    app_id = request.query.get("app_id") or (
        header.removeprefix("Token ").strip() if header.startswith("Token ") else ""
    )
    if not app_id:
        return OxrError(401, "missing_app_id", f"No App ID provided - {SIGN_UP}")
    if app_id not in em.settings.app_ids:
        return OxrError(401, "invalid_app_id", f"Invalid App ID provided - {SIGN_UP}")
    return None


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return OxrError(429, "access_restricted", "Access restricted for repeated over-use (status: 429).").response()
    if fault.kind is FaultKind.OUTAGE:
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )
    return OxrError(500, "server_error", "Something went wrong on our side. Please try again.").response()


def _rates_response(snapshot: Snapshot, base: str, symbols: tuple[str, ...]) -> web.Response:
    """The body written by hand: each rate an exact decimal literal (JSON has no decimals; floats would round)."""
    rates = ",".join(f"{json.dumps(code)}:{text(rate)}" for code, rate in sorted(snapshot.quote(base, symbols).items()))
    body = (
        f'{{"disclaimer":{json.dumps(DISCLAIMER)},"license":{json.dumps(LICENSE)},'
        f'"timestamp":{snapshot.timestamp},"base":{json.dumps(base)},"rates":{{{rates}}}}}'
    )
    return web.Response(text=body, content_type="application/json")


def _base_and_symbols(em: Emulator, request: web.Request) -> tuple[str, tuple[str, ...]]:
    base = (request.query.get("base") or "USD").upper()
    if base not in CURRENCIES:
        raise OxrError(400, "invalid_base", "Client requested rates for an unsupported base currency")
    if base != "USD" and em.settings.plan == "free":
        raise OxrError(403, "not_allowed", NOT_ALLOWED)
    raw = request.query.get("symbols") or request.query.get("currencies") or ""
    return base, tuple(s.strip().upper() for s in raw.split(",") if s.strip())


async def latest(request: web.Request) -> web.Response:
    em = request.app[EMULATOR_KEY]
    base, symbols = _base_and_symbols(em, request)
    return _rates_response(em.board.latest, base, symbols)


async def historical(request: web.Request) -> web.Response:
    em = request.app[EMULATOR_KEY]
    base, symbols = _base_and_symbols(em, request)
    try:
        day = date.fromisoformat(request.match_info["day"])
    except ValueError:
        raise OxrError(400, "invalid_date", "Invalid date format - please use YYYY-MM-DD") from None
    snapshot = em.board.on(day)
    if snapshot is None or day > datetime.fromtimestamp(em.clock.now(), UTC).date():
        raise OxrError(400, "not_available", NOT_AVAILABLE)
    return _rates_response(snapshot, base, symbols)


async def currencies(_request: web.Request) -> web.Response:
    return web.json_response(dict(CURRENCIES))


async def not_found(_request: web.Request) -> web.Response:
    raise OxrError(404, "not_found", "Client requested a non-existent resource/route")


# -- /_emulator -------------------------------------------------------------------------------------------------------
def install_admin(em: Emulator, app: web.Application) -> None:
    admin = Admin(errors=lambda err: err.response() if isinstance(err, OxrError) else None)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.reset()
        return {"status": "reset"}

    def set_rates(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"rates": {"INR": "83.5"}, "publish": true}`: the market moves now (published at once by default)."""
        publish = opt_bool(body, "publish")
        em.board.set(parse_rates(body.get("rates")), now=em.clock.now(), publish=publish is not False)
        return em.board.to_json()

    def move(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"symbol": "INR", "to": "84.1"}` or `{"symbol": "INR", "by_bps": -150}`, `publish` as for /rates."""
        to = body.get("to")
        em.board.move(
            req_str(body, "symbol"),
            now=em.clock.now(),
            to=parse_rate(to, "to") if to is not None else None,
            by_bps=opt_int(body, "by_bps"),
            publish=opt_bool(body, "publish") is not False,
        )
        return em.board.to_json()

    def schedule(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"after_s": 3600, "rates": {...}}`: the market moves then (published at the next publication)."""
        after = body.get("after_s")
        if not isinstance(after, int | float) or isinstance(after, bool) or after < 0:
            raise AdminError("after_s must be a number >= 0")
        em.board.plan(after, parse_rates(body.get("rates")), now=em.clock.now())
        return em.board.to_json()

    def clear_schedule(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.board.schedule.clear()
        return em.board.to_json()

    def freeze(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"frozen": true}`: the provider stops publishing (stale); false: publishes again, at once."""
        frozen = opt_bool(body, "frozen")
        if frozen is None:
            raise AdminError("frozen is required")
        em.board.freeze(frozen, now=em.clock.now())
        return em.board.to_json()

    def publish(_request: web.Request, _body: dict[str, Any]) -> Any:
        if em.board.frozen:
            raise AdminError("the board is frozen: unfreeze it to publish", status=409)
        em.board.publish(em.clock.now())
        return em.board.to_json()

    def quote(request: web.Request, _body: dict[str, Any]) -> Any:
        """What the API answers now, as strings (for tests that compare exactly)."""
        base = (request.query.get("base") or "USD").upper()
        if base not in em.board.market:
            raise AdminError(f"base is one of {sorted(em.board.market)}")
        snapshot = em.board.latest
        return {
            "timestamp": snapshot.timestamp,
            "base": base,
            "rates": {k: text(v) for k, v in snapshot.quote(base).items()},
        }

    for method, path, handler in [
        ("POST", "/reset", reset),
        ("GET", "/rates", lambda _r, _b: em.board.to_json()),
        ("POST", "/rates", set_rates),
        ("POST", "/rates/move", move),
        ("POST", "/rates/schedule", schedule),
        ("DELETE", "/rates/schedule", clear_schedule),
        ("POST", "/freeze", freeze),
        ("POST", "/publish", publish),
        ("GET", "/quote", quote),
    ]:
        admin.route(method, path, handler)
    admin.clock(em.clock, moved=em.tick)
    admin.faults(em.faults)
    admin.requests(em.requests)
    admin.install(app)


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[api_middleware])
    app[EMULATOR_KEY] = emulator
    app.router.add_get(f"{API}/latest.json", latest)
    app.router.add_get(f"{API}/historical/{{day}}.json", historical)
    app.router.add_get(f"{API}/currencies.json", currencies)
    install_admin(emulator, app)
    app.router.add_route("*", f"{API}/{{tail:.*}}", not_found)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.stop)
    return app


__all__ = ["EMULATOR_KEY", "FAULT_KINDS", "Emulator", "OxrError", "create_app"]
