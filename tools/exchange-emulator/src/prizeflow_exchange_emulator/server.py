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
import socket
import struct
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

from aiohttp import web

from prizeflow_exchange_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_exchange_emulator.faults import FaultKind, Faults
from prizeflow_exchange_emulator.settings import EmulatorSettings, WhitelistEntry
from prizeflow_exchange_emulator.signing import verify
from prizeflow_exchange_emulator.state import Account, ExchangeError, now

log = logging.getLogger(__name__)

WITHDRAW = "/sapi/v1/capital/withdraw/apply"
HISTORY = "/sapi/v1/capital/withdraw/history"
COINS = "/sapi/v1/capital/config/getall"


@dataclass
class RequestEntry:
    method: str
    path: str
    at: float
    params: dict[str, str] = field(default_factory=dict)  # signed parameters, the signature left out
    status: int | None = None
    fault: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.requests: deque[RequestEntry] = deque(maxlen=100_000)
        self.faults = Faults()
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
        self.faults.clear()

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
        path, method = request.path, request.method
        entry = RequestEntry(method, path, time.time())
        self.requests.append(entry)
        fault = self.faults.take(method, path)
        if fault is not None:
            entry.fault = fault.kind.value
            if fault.kind is FaultKind.CONNECTION_RESET:
                _reset_connection(request)
                return _finish(entry, web.Response(status=499))
            if fault.kind is FaultKind.RATE_LIMIT:
                return _finish(entry, _error(ExchangeError(429, -1003, "Too many requests; please use the websocket.")))
            if fault.kind is FaultKind.SERVER_ERROR:
                return _finish(
                    entry, _error(ExchangeError(503, -1001, "Internal error; unable to process your request."))
                )
        try:
            response = await self._route(request, entry)
        except ExchangeError as err:
            response = _error(err)
        if fault is not None and fault.kind.after_processing:
            if fault.kind is FaultKind.DROP_AFTER_SUCCESS:
                _reset_connection(request)
                return _finish(entry, web.Response(status=499))
            if fault.kind is FaultKind.SERVER_ERROR_AFTER_SUCCESS:
                return _finish(
                    entry, _error(ExchangeError(502, -1001, "Internal error; unable to process your request."))
                )
            await asyncio.sleep(fault.delay_ms / 1000)  # the fault itself: the answer comes after the client gave up
        return _finish(entry, response)

    async def _route(self, request: web.Request, entry: RequestEntry) -> web.StreamResponse:  # noqa: PLR0911 - a routing table
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
        r = app.router
        r.add_post("/_emulator/reset", self._reset)
        r.add_get("/_emulator/withdrawals", self._withdrawals)
        r.add_post("/_emulator/withdrawals/{id}/settle", self._settle)
        r.add_post("/_emulator/withdrawals/{id}/reverse", self._reverse)
        r.add_post("/_emulator/whitelist", self._whitelist_add)
        r.add_delete("/_emulator/whitelist", self._whitelist_clear)
        r.add_post("/_emulator/balances", self._balances)
        r.add_get("/_emulator/balances", self._balances_get)
        r.add_post("/_emulator/networks/{coin}/{network}", self._network)
        r.add_post("/_emulator/history-lag", self._history_lag)
        r.add_post("/_emulator/faults", self._fault)
        r.add_delete("/_emulator/faults", self._faults_clear)
        r.add_get("/_emulator/requests", self._requests)
        r.add_post("/_emulator/discrepancies", self._discrepancy)

    async def _reset(self, _r: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _withdrawals(self, _r: web.Request) -> web.Response:
        return web.json_response(
            [w.to_json() | {"requested": str(w.amount)} for w in self.account.withdrawals.values()]
        )

    async def _settle(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            w = self.account.settle(request.match_info["id"], str(body.get("outcome", "completed")), now())
        except KeyError:
            return web.json_response({"error": "no such withdrawal"}, status=404)
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=409)
        return web.json_response(w.to_json())

    async def _reverse(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            w = self.account.reverse(request.match_info["id"], str(body.get("outcome", "failure")), now())
        except KeyError:
            return web.json_response({"error": "no such withdrawal"}, status=404)
        except ValueError as err:
            return web.json_response({"error": str(err)}, status=409)
        return web.json_response(w.to_json())

    async def _whitelist_add(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "enabled" in body:
            self.account.whitelist_enabled = bool(body["enabled"])
        if body.get("address"):
            self.account.whitelist.add(WhitelistEntry(str(body["network"]), str(body["address"]), body.get("tag")))
        return web.json_response({"entries": len(self.account.whitelist), "enabled": self.account.whitelist_enabled})

    async def _whitelist_clear(self, _r: web.Request) -> web.Response:
        self.account.whitelist.clear()
        return web.json_response({"entries": 0})

    async def _balances(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            for coin, amount in body.items():
                self.account.balances[str(coin)] = Decimal(str(amount))
        except InvalidOperation:
            return web.json_response({"error": "amounts are decimal strings"}, status=400)
        return await self._balances_get(request)

    async def _balances_get(self, _r: web.Request) -> web.Response:
        return web.json_response({c: str(v) for c, v in self.account.balances.items()})

    async def _network(self, request: web.Request) -> web.Response:
        """Change one network: `withdraw_enable` (suspend or resume withdrawals), `withdraw_fee`, `withdraw_min`."""
        body = await request.json()
        try:
            net = self.account.network(request.match_info["coin"], request.match_info["network"])
        except ExchangeError:
            return web.json_response({"error": "no such network"}, status=404)
        if "withdraw_enable" in body:
            net.withdraw_enable = bool(body["withdraw_enable"])
        for name in ("withdraw_fee", "withdraw_min", "withdraw_max"):
            if name in body:
                setattr(net, name, Decimal(str(body[name])))
        return web.json_response(net.to_json())

    async def _history_lag(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.account.history_lag_s = float(body.get("ms", 0)) / 1000
        return web.json_response({"ms": int(self.account.history_lag_s * 1000)})

    async def _fault(self, request: web.Request) -> web.Response:
        body = await request.json()
        try:
            rule = self.faults.add(
                str(body["kind"]),
                method=str(body.get("method", "*")),
                path_prefix=str(body.get("path_prefix", "/")),
                count=int(body.get("count", 1)),
                delay_ms=int(body.get("delay_ms", 30_000)),
            )
        except (KeyError, ValueError) as err:
            return web.json_response({"error": str(err)}, status=400)
        return web.json_response(rule.to_json())

    async def _faults_clear(self, _r: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"ok": True})

    async def _discrepancy(self, request: web.Request) -> web.Response:
        """A discrepancy shown in the withdrawal history (see `discrepancies`): 201 with the statement line id."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise DiscrepancyError(400, "the body is a JSON object")
            line_id = inject(self.account, body, now())
        except DiscrepancyError as err:
            return web.json_response({"error": str(err)}, status=err.status)
        except ExchangeError as err:
            return web.json_response({"error": err.msg}, status=400)
        except ValueError:
            return web.json_response({"error": "the body is a JSON object"}, status=400)
        return web.json_response({"line_id": line_id}, status=201)

    async def _requests(self, request: web.Request) -> web.Response:
        method, path = request.query.get("method"), request.query.get("path")
        chosen = [
            asdict(e)
            for e in self.requests
            if (method is None or e.method == method.upper()) and (path is None or e.path == path)
        ]
        counts = Counter(f"{e.method} {e.path}" for e in self.requests)
        return web.json_response({"requests": chosen, "counts": dict(counts)})


def _finish(entry: RequestEntry, response: web.StreamResponse) -> web.StreamResponse:
    entry.status = response.status
    return response


def _error(err: ExchangeError) -> web.Response:
    return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)


def _reset_connection(request: web.Request) -> None:
    """Cut the TCP connection with a RST (SO_LINGER 0), as a load balancer dropping it would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


EMULATOR_KEY = web.AppKey("emulator", Emulator)


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app[EMULATOR_KEY] = emulator

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    emulator.install_admin(app)
    app.router.add_get("/health/live", health)
    app.router.add_get("/health/ready", health)
    app.router.add_route("*", "/api/{tail:.*}", emulator.handle)
    app.router.add_route("*", "/sapi/{tail:.*}", emulator.handle)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.close)
    return app


__all__ = ["COINS", "EMULATOR_KEY", "HISTORY", "WITHDRAW", "Emulator", "RequestEntry", "create_app"]
