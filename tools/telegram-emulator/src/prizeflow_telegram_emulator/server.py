"""The emulator's aiohttp app: the Bot API (`/bot<token>/<method>`) and its admin (`/_emulator/...`).

Bot API calls take JSON, form or query parameters, and answer `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": ..., "description": ...}` (with `parameters.retry_after` on 429), as Telegram does.
Faults are armed per method (and optionally per user): `rate_limit` (429 with retry_after), `server_error` (500),
`outage` (502 until cleared), `timeout_after_success` (the call is carried out, its answer held back longer
than any client waits) and `ledger_delay` (a gift is sent and answered, its transaction listed only once released).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from prizeflow_telegram_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_telegram_emulator.settings import EmulatorSettings
from prizeflow_telegram_emulator.state import Books, BotApiError, Gift, User, bad_request

log = logging.getLogger(__name__)

BOT_ID = 7_000_000_001
FAULT_KINDS = frozenset({"rate_limit", "server_error", "outage", "timeout_after_success", "ledger_delay"})
_AFTER = frozenset({"timeout_after_success", "ledger_delay"})  # faults of a call that is carried out


@dataclass
class Fault:
    kind: str
    method: str | None  # None: every method
    user_id: int | None = None  # None: any user
    remaining: int | None = 1  # None: until cleared
    retry_after: int = 1

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        if self.method is not None and self.method.lower() != method.lower():
            return False
        return self.user_id is None or _int(params.get("user_id")) == self.user_id


@dataclass
class Call:
    method: str
    at: float
    user_id: int | None
    params: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    fault: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.books = self._new_books()
        self.faults: list[Fault] = []
        self.calls: deque[Call] = deque(maxlen=100_000)

    def _new_books(self) -> Books:
        gifts = {g.id: Gift(g.id, g.star_count, g.total_count, g.remaining_count) for g in self.settings.gifts}
        return Books(balance=self.settings.balance, gifts=gifts)

    def reset(self) -> None:
        self.books = self._new_books()
        self.faults.clear()
        self.calls.clear()

    def take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, params):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    # -- the Bot API ------------------------------------------------------------------------------------------
    def execute(self, method: str, p: dict[str, Any]) -> Any:
        b = self.books
        name = method.lower()
        if name == "getme":
            return {"id": BOT_ID, "is_bot": True, "first_name": "Prizeflow Emulator", "username": "prizeflow_emu_bot"}
        if name == "getavailablegifts":
            return {"gifts": [g.as_api() for g in b.gifts.values()]}
        if name == "getmystarbalance":
            return {"amount": b.balance}
        if name == "getstartransactions":
            offset, limit = _int(p.get("offset")) or 0, _int(p.get("limit")) or 100
            return {"transactions": b.page(offset, limit)}
        if name == "sendgift":
            user_id, gift_id = _int(p.get("user_id")), p.get("gift_id")
            if user_id is None or not isinstance(gift_id, str) or not gift_id:
                raise bad_request("user_id and gift_id are required")
            b.send_gift(user_id, gift_id, text=p.get("text"), pay_for_upgrade=_bool(p.get("pay_for_upgrade")))
            return True
        if name == "refundstarpayment":
            user_id = _int(p.get("user_id"))
            if user_id is None:
                raise bad_request("user_id is required")
            b.refund(user_id, str(p.get("telegram_payment_charge_id") or ""))
            return True
        raise BotApiError(404, "Not Found")


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise bad_request("the body must be a JSON object")
            params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


def create_app(emulator: Emulator) -> web.Application:
    async def bot_api(request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if token not in emulator.settings.tokens:
            return _answer(401, BotApiError(401, "Unauthorized").body())
        try:
            params = await _params(request)
        except (BotApiError, ValueError) as err:
            failure = err if isinstance(err, BotApiError) else bad_request("can't parse the request body")
            return _answer(failure.status, failure.body())
        call = Call(method, time.time(), _int(params.get("user_id")), {k: v for k, v in params.items() if k != "text"})
        emulator.calls.append(call)
        fault = emulator.take_fault(method, params)
        if fault is not None and fault.kind not in _AFTER:
            call.fault = fault.kind
            failure = {
                "rate_limit": BotApiError(
                    429, f"Too Many Requests: retry after {fault.retry_after}", retry_after=fault.retry_after
                ),
                "server_error": BotApiError(500, "Internal Server Error"),
                "outage": BotApiError(502, "Bad Gateway"),
            }[fault.kind]
            call.status = failure.status
            return _answer(failure.status, failure.body())
        try:
            result = emulator.execute(method, params)
        except BotApiError as err:
            call.status = err.status
            return _answer(err.status, err.body())
        call.status = 200
        if fault is not None and fault.kind == "ledger_delay":  # answered; listed once released
            call.fault = fault.kind
            if method.lower() == "sendgift":
                emulator.books.hold_last()
        elif fault is not None:  # carried out; the answer arrives after the client gave up
            call.fault = fault.kind
            await asyncio.sleep(emulator.settings.hang_ms / 1000)
        return _answer(200, {"ok": True, "result": result})

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", bot_api)
    app.router.add_get("/health/live", health)
    app.router.add_get("/health/ready", health)
    _admin_routes(app, emulator)
    _discrepancy_route(app, emulator)
    return app


def _admin_routes(app: web.Application, emulator: Emulator) -> None:
    """`/_emulator/...`: what only Telegram or a user can do, faults, and the books (no authentication)."""

    async def state(_request: web.Request) -> web.Response:
        b = emulator.books
        return web.json_response(
            {
                "balance": b.balance,
                "gifts": [g.as_api() for g in b.gifts.values()],
                "transactions": [{**b.transaction_api(t), "refunded": t.refunded} for t in b.transactions],
                "faults": [asdict(f) for f in emulator.faults],
            }
        )

    async def calls(request: web.Request) -> web.Response:
        method = request.query.get("method")
        chosen = [asdict(c) for c in emulator.calls if method is None or c.method.lower() == method.lower()]
        return web.json_response({"calls": chosen})

    async def set_balance(request: web.Request) -> web.Response:
        body = await request.json()
        emulator.books.balance = int(body["amount"])
        return web.json_response({"balance": emulator.books.balance})

    async def set_gifts(request: web.Request) -> web.Response:
        body = await request.json()
        emulator.books.gifts = {
            str(g["id"]): Gift(
                str(g["id"]),
                int(g["star_count"]),
                g.get("total_count"),
                g.get("remaining_count", g.get("total_count")),
                g.get("upgrade_star_count"),
            )
            for g in body["gifts"]
        }
        return web.json_response({"gifts": [g.as_api() for g in emulator.books.gifts.values()]})

    async def set_user(request: web.Request) -> web.Response:
        body = await request.json()
        user_id, state = int(body["user_id"]), str(body.get("state", "active"))
        if user_id <= 0 or state not in ("active", "blocked", "deleted"):
            return web.json_response({"error": "a positive user_id; state active, blocked or deleted"}, status=400)
        user = emulator.books.users.setdefault(user_id, User(user_id))
        user.state = state
        return web.json_response({"user_id": user.id, "state": user.state})

    async def pay(request: web.Request) -> web.Response:
        body = await request.json()
        try:
            tx = emulator.books.pay(int(body["user_id"]), int(body["amount"]))
        except BotApiError as err:
            return _answer(err.status, err.body())
        return web.json_response({"telegram_payment_charge_id": tx.id, "balance": emulator.books.balance})

    async def refund_gift(request: web.Request) -> web.Response:
        try:
            tx = emulator.books.refund_gift(str(request.match_info["transaction_id"]))
        except BotApiError as err:
            return _answer(err.status, err.body())
        return web.json_response({"refunded": tx.id, "amount": tx.amount, "balance": emulator.books.balance})

    async def add_fault(request: web.Request) -> web.Response:
        body = await request.json()
        kind = str(body.get("kind"))
        if kind not in FAULT_KINDS:
            return web.json_response({"error": f"kind must be one of {sorted(FAULT_KINDS)}"}, status=400)
        fault = Fault(
            kind=kind,
            method=body.get("method"),
            user_id=_int(body.get("user_id")),
            remaining=None if kind == "outage" and body.get("count") is None else int(body.get("count", 1)),
            retry_after=int(body.get("retry_after", 1)),
        )
        emulator.faults.append(fault)
        return web.json_response(asdict(fault))

    async def clear_faults(_request: web.Request) -> web.Response:
        emulator.faults.clear()
        return web.json_response({"faults": []})

    async def release(_request: web.Request) -> web.Response:
        return web.json_response({"released": emulator.books.release()})

    async def reset(_request: web.Request) -> web.Response:
        emulator.reset()
        return web.json_response({"reset": True})

    app.router.add_get("/_emulator/state", state)
    app.router.add_get("/_emulator/calls", calls)
    app.router.add_post("/_emulator/balance", set_balance)
    app.router.add_post("/_emulator/gifts", set_gifts)
    app.router.add_post("/_emulator/users", set_user)
    app.router.add_post("/_emulator/payments", pay)
    app.router.add_post("/_emulator/gift_refunds/{transaction_id}", refund_gift)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_post("/_emulator/release", release)
    app.router.add_post("/_emulator/reset", reset)


def _discrepancy_route(app: web.Application, emulator: Emulator) -> None:
    async def discrepancy(request: web.Request) -> web.Response:
        """A discrepancy shown in getStarTransactions (see `discrepancies`): 201 with the statement line id."""
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise DiscrepancyError(400, "the body is a JSON object")
            line_id = inject(emulator.books, body, int(time.time()))
        except DiscrepancyError as err:
            return web.json_response({"error": str(err)}, status=err.status)
        except BotApiError as err:
            return _answer(err.status, err.body())
        except ValueError:
            return web.json_response({"error": "the body is a JSON object"}, status=400)
        return web.json_response({"line_id": line_id}, status=201)

    app.router.add_post("/_emulator/discrepancies", discrepancy)


__all__ = ["BOT_ID", "FAULT_KINDS", "Call", "Emulator", "Fault", "create_app"]
