"""The emulator's aiohttp app: the Binance REST subset (`/api/v3`, `/sapi/v1`) and its admin API (`/_emulator`).

Served: `GET /api/v3/exchangeInfo` and `GET /api/v3/time` (public), and, signed: `GET /sapi/v1/capital/config/getall`
(coins, networks, fees), `POST /sapi/v1/capital/withdraw/apply`, `GET /sapi/v1/capital/withdraw/history`
(startTime/endTime at most 90 days apart, offset, limit <= 1000, newest first),
`GET /api/v3/account` (balances). Everything else answers Binance's 404. Every API call is logged (never the key
nor the signature) for tests asserting "asked once".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_exchange_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_exchange_emulator.settings import EmulatorSettings, WhitelistEntry
from prizeflow_exchange_emulator.signing import verify
from prizeflow_exchange_emulator.state import Account, ExchangeError, Withdrawal, now

log = logging.getLogger(__name__)

WITHDRAW = "/sapi/v1/capital/withdraw/apply"
HISTORY = "/sapi/v1/capital/withdraw/history"
COINS = "/sapi/v1/capital/config/getall"


FAULT_KINDS = (
    FaultKind.CONNECTION_RESET,  # cut before the request is processed: nothing happened
    FaultKind.RATE_LIMIT,  # 429 -1003, not processed
    FaultKind.SERVER_ERROR,  # 503 -1001, not processed (the client cannot know that)
    FaultKind.SERVER_ERROR_AFTER_SUCCESS,  # processed, then answered 502
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # processed, the answer held back `delay_ms`
    FaultKind.DROP_AFTER_SUCCESS,  # processed, then the connection is cut
)


@dataclass
class ExchangeRequest(RequestEntry):
    params: dict[str, str] = field(default_factory=dict)  # signed parameters, the signature left out


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.requests: RequestLog[ExchangeRequest] = RequestLog()
        self.faults = Faults(FAULT_KINDS)
        self.account = self._new_account()
        self._settler: asyncio.Task[None] | None = None

    def _new_account(self) -> Account:
        return Account(
            balances=dict(self.settings.balances),
            whitelist=set(self.settings.whitelist),
            whitelist_enabled=self.settings.whitelist_enabled,
            history_lag_s=self.settings.history_lag_ms / 1000,
        )

    def reset(self) -> None:
        self.account = self._new_account()
        self.requests.clear()
        self.faults.reset()

    def settle_due(self) -> int:
        t = now()
        due = self.account.due(t - self.settings.auto_settle_ms / 1000)
        for wid in due:
            self.account.settle(wid, "completed", t)
        return len(due)

    async def _auto_settle(self) -> None:
        interval = max(0.05, min(1.0, self.settings.auto_settle_ms / 4000))
        while True:
            await asyncio.sleep(interval)  # a clock, not synchronisation: the exchange's own pace
            try:
                self.settle_due()
            except Exception:
                log.exception("auto-settling withdrawals failed")

    async def start(self, _app: web.Application | None = None) -> None:
        if self.settings.auto_settle_ms > 0:
            self._settler = asyncio.create_task(self._auto_settle(), name="withdrawal-auto-settle")

    async def close(self, _app: web.Application | None = None) -> None:
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler

    # -- the API ------------------------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        entry = self.requests.record(ExchangeRequest(request.method, request.path))

        async def carry_out() -> web.StreamResponse:
            try:
                return await self._route(request, entry)
            except ExchangeError as err:
                return _error(err)

        return await strike(self.faults.take(request.method, request.path), request, carry_out, _refusal, entry)

    async def _route(self, request: web.Request, entry: ExchangeRequest) -> web.StreamResponse:  # noqa: PLR0911 - a routing table
        path, method = request.path, request.method
        if method == "GET" and path == "/api/v3/exchangeInfo":
            return web.json_response(
                {
                    "timezone": "UTC",
                    "serverTime": int(now() * 1000),
                    "rateLimits": [],
                    "exchangeFilters": [],
                    "symbols": [],
                }
            )
        if method == "GET" and path == "/api/v3/time":
            return web.json_response({"serverTime": int(now() * 1000)})
        if method == "GET" and path == "/sapi/v1/system/status":
            return web.json_response({"status": 0, "msg": "normal"})
        signed = {
            ("GET", COINS),
            ("POST", WITHDRAW),
            ("GET", HISTORY),
            ("GET", "/api/v3/account"),
        }
        if (method, path) not in signed:
            raise ExchangeError(404, -1000, "Unknown endpoint.")
        body = (await request.text()) if method == "POST" else ""
        params = verify(
            api_key=self.settings.api_key,
            secret=self.settings.api_secret,
            header_key=request.headers.get("X-MBX-APIKEY"),
            query=request.query_string,
            body=body,
            now_ms=int(now() * 1000),
            recv_window_ms=self.settings.recv_window_ms,
        )
        entry.params = {k: v for k, v in params.items() if k not in ("timestamp", "recvWindow")}
        if path == COINS:
            return web.json_response(self.account.coins())
        if path == WITHDRAW:
            w = self.account.withdraw(params, now())
            return web.json_response({"id": w.id})
        if path == HISTORY:
            return web.json_response(self.account.history(params, now()))
        balances = [{"asset": c, "free": str(v), "locked": "0"} for c, v in sorted(self.account.balances.items())]
        return web.json_response({"makerCommission": 10, "takerCommission": 10, "canTrade": True,
                                  "canWithdraw": True, "canDeposit": True, "accountType": "SPOT",
                                  "balances": balances, "permissions": ["SPOT"]})  # fmt: skip

    # -- the admin API ------------------------------------------------------------------------------------------
    def install_admin(self, app: web.Application) -> None:
        admin = Admin(errors=_admin_error)
        for method, path, handler in [
            ("POST", "/reset", self._reset),
            ("GET", "/withdrawals", self._withdrawals),
            ("POST", "/withdrawals/{id}/settle", self._settle),
            ("POST", "/withdrawals/{id}/reverse", self._reverse),
            ("POST", "/whitelist", self._whitelist_add),
            ("DELETE", "/whitelist", self._whitelist_clear),
            ("POST", "/balances", self._balances),
            ("GET", "/balances", self._balances_get),
            ("POST", "/networks/{coin}/{network}", self._network),
            ("POST", "/history-lag", self._history_lag),
            ("POST", "/discrepancies", self._discrepancy),
        ]:
            admin.route(method, path, handler)
        admin.faults(self.faults)
        admin.requests(self.requests)
        admin.install(app)

    def _reset(self, _r: web.Request, _body: dict[str, Any]) -> Any:
        self.reset()
        return {"status": "reset"}

    def _withdrawals(self, _r: web.Request, _body: dict[str, Any]) -> Any:
        return [w.to_json() | {"requested": str(w.amount)} for w in self.account.withdrawals.values()]

    def _settle(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._move(
            lambda: self.account.settle(request.match_info["id"], str(body.get("outcome", "completed")), now())
        )

    def _reverse(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self._move(
            lambda: self.account.reverse(request.match_info["id"], str(body.get("outcome", "failure")), now())
        )

    @staticmethod
    def _move(move: Callable[[], Withdrawal]) -> Any:
        """A withdrawal settled or reversed: 404 for an unknown one, 409 for a move its status forbids."""
        try:
            return move().to_json()
        except KeyError:
            raise AdminError("no such withdrawal", status=404) from None
        except ValueError as err:
            raise AdminError(str(err), status=409) from None

    def _whitelist_add(self, _r: web.Request, body: dict[str, Any]) -> Any:
        if "enabled" in body:
            self.account.whitelist_enabled = bool(body["enabled"])
        if body.get("address"):
            self.account.whitelist.add(WhitelistEntry(str(body["network"]), str(body["address"]), body.get("tag")))
        return {"entries": len(self.account.whitelist), "enabled": self.account.whitelist_enabled}

    def _whitelist_clear(self, _r: web.Request, _body: dict[str, Any]) -> Any:
        self.account.whitelist.clear()
        return {"entries": 0}

    def _balances(self, request: web.Request, body: dict[str, Any]) -> Any:
        try:
            for coin, amount in body.items():
                self.account.balances[str(coin)] = Decimal(str(amount))
        except InvalidOperation:
            raise AdminError("amounts are decimal strings") from None
        return self._balances_get(request, body)

    def _balances_get(self, _r: web.Request, _body: dict[str, Any]) -> Any:
        return {c: str(v) for c, v in self.account.balances.items()}

    def _network(self, request: web.Request, body: dict[str, Any]) -> Any:
        """Change one network: `withdraw_enable` (suspend or resume withdrawals), `withdraw_fee`, `withdraw_min`."""
        try:
            net = self.account.network(request.match_info["coin"], request.match_info["network"])
        except ExchangeError:
            raise AdminError("no such network", status=404) from None
        if "withdraw_enable" in body:
            net.withdraw_enable = bool(body["withdraw_enable"])
        for name in ("withdraw_fee", "withdraw_min", "withdraw_max"):
            if name in body:
                setattr(net, name, Decimal(str(body[name])))
        return net.to_json()

    def _history_lag(self, _r: web.Request, body: dict[str, Any]) -> Any:
        self.account.history_lag_s = float(body.get("ms", 0)) / 1000
        return {"ms": int(self.account.history_lag_s * 1000)}

    def _discrepancy(self, _r: web.Request, body: dict[str, Any]) -> Any:
        """A discrepancy shown in the withdrawal history (see `discrepancies`): 201 with the statement line id."""
        return web.json_response({"line_id": inject(self.account, body, now())}, status=201)


def _admin_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, DiscrepancyError):
        return web.json_response({"error": str(err)}, status=err.status)
    if isinstance(err, ExchangeError):
        return web.json_response({"error": err.msg}, status=400)
    return None


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return _error(ExchangeError(429, -1003, "Too many requests; please use the websocket."))
    if fault.kind is FaultKind.SERVER_ERROR_AFTER_SUCCESS:
        return _error(ExchangeError(502, -1001, "Internal error; unable to process your request."))
    return _error(ExchangeError(503, -1001, "Internal error; unable to process your request."))


def _error(err: ExchangeError) -> web.Response:
    return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)


EMULATOR_KEY = web.AppKey("emulator", Emulator)


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app[EMULATOR_KEY] = emulator

    emulator.install_admin(app)
    app.router.add_route("*", "/api/{tail:.*}", emulator.handle)
    app.router.add_route("*", "/sapi/{tail:.*}", emulator.handle)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.close)
    return app


__all__ = ["COINS", "EMULATOR_KEY", "FAULT_KINDS", "HISTORY", "WITHDRAW", "Emulator", "ExchangeRequest", "create_app"]
