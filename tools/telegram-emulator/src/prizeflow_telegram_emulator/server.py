"""The emulator's aiohttp app: the Bot API (`/bot<token>/<method>`) and its admin (`/_emulator/...`).

Bot API calls take JSON, form or query parameters, and answer `{"ok": true, "result": ...}` or
`{"ok": false, "error_code": ..., "description": ...}` (with `parameters.retry_after` on 429), as Telegram does.
Faults (the emulator kit's) are armed per method (and optionally per user): `rate_limit` (429 with retry_after),
`server_error` (500), `outage` (502 until cleared), `timeout_after_success` (the call is carried out, its answer held
back longer than any client waits) and `ledger_delay` (a gift is sent and answered, its transaction listed only once
released).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_telegram_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_telegram_emulator.settings import EmulatorSettings
from prizeflow_telegram_emulator.state import Books, BotApiError, Gift, User, bad_request

log = logging.getLogger(__name__)

BOT_ID = 7_000_000_001
FAULT_KINDS = (
    FaultKind.RATE_LIMIT,  # 429 with retry_after, not carried out
    FaultKind.SERVER_ERROR,  # 500, not carried out
    FaultKind.OUTAGE,  # 502 until cleared (unless a count is given), not carried out
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # carried out; the answer held back longer than any client waits
    FaultKind.LEDGER_DELAY,  # a gift sent and answered; its transaction listed only once released
)


@dataclass
class BotCall(RequestEntry):
    """A Bot API call as the request log shows it: `method` is the Bot API method (never the token, never a gift's
    text)."""

    user_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.books = self._new_books()
        self.faults = Faults(FAULT_KINDS, delay_ms=settings.hang_ms)
        self.calls: RequestLog[BotCall] = RequestLog()

    def _new_books(self) -> Books:
        gifts = {g.id: Gift(g.id, g.star_count, g.total_count, g.remaining_count) for g in self.settings.gifts}
        return Books(balance=self.settings.balance, gifts=gifts)

    def reset(self) -> None:
        self.books = self._new_books()
        self.faults.reset()
        self.calls.clear()

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


def _refusal(fault: FaultRule) -> web.Response:
    retry_after = int(fault.params.get("retry_after", 1))
    failure = {
        FaultKind.RATE_LIMIT: BotApiError(
            429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
        ),
        FaultKind.SERVER_ERROR: BotApiError(500, "Internal Server Error"),
    }.get(fault.kind, BotApiError(502, "Bad Gateway"))
    return _answer(failure.status, failure.body())


def create_app(emulator: Emulator) -> web.Application:
    async def bot_api(request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        if token not in emulator.settings.tokens:
            return _answer(401, BotApiError(401, "Unauthorized").body())
        try:
            params = await _params(request)
        except (BotApiError, ValueError) as err:
            failure = err if isinstance(err, BotApiError) else bad_request("can't parse the request body")
            return _answer(failure.status, failure.body())
        user_id = _int(params.get("user_id"))
        call = emulator.calls.record(
            BotCall(
                method,
                f"/bot<token>/{method}",
                user_id=user_id,
                params={k: v for k, v in params.items() if k != "text"},
            )
        )
        fault = emulator.faults.take(request.method, request.path, {"bot_method": method.lower(), "user_id": user_id})

        async def carry_out() -> web.StreamResponse:
            try:
                result = emulator.execute(method, params)
            except BotApiError as err:
                return _answer(err.status, err.body())
            if fault is not None and fault.kind is FaultKind.LEDGER_DELAY and method.lower() == "sendgift":
                emulator.books.hold_last()  # answered; listed once released
            return _answer(200, {"ok": True, "result": result})

        return await strike(fault, request, carry_out, _refusal, call)

    app = web.Application()
    app.router.add_route("*", "/bot{token}/{method}", bot_api)
    _install_admin(app, emulator)
    return app


def _install_admin(app: web.Application, emulator: Emulator) -> None:
    """`/_emulator/...`: what only Telegram or a user can do, faults, and the books (no authentication)."""
    admin = Admin(errors=_bot_api_error)

    def state(_request: web.Request, _body: dict[str, Any]) -> Any:
        b = emulator.books
        return {
            "balance": b.balance,
            "gifts": [g.as_api() for g in b.gifts.values()],
            "transactions": [{**b.transaction_api(t), "refunded": t.refunded} for t in b.transactions],
            "faults": [r.to_json() for r in emulator.faults.armed()],
        }

    def set_balance(_request: web.Request, body: dict[str, Any]) -> Any:
        emulator.books.balance = int(body["amount"])
        return {"balance": emulator.books.balance}

    def set_gifts(_request: web.Request, body: dict[str, Any]) -> Any:
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
        return {"gifts": [g.as_api() for g in emulator.books.gifts.values()]}

    def set_user(_request: web.Request, body: dict[str, Any]) -> Any:
        user_id, state = int(body["user_id"]), str(body.get("state", "active"))
        if user_id <= 0 or state not in ("active", "blocked", "deleted"):
            raise AdminError("a positive user_id; state active, blocked or deleted")
        user = emulator.books.users.setdefault(user_id, User(user_id))
        user.state = state
        return {"user_id": user.id, "state": user.state}

    def pay(_request: web.Request, body: dict[str, Any]) -> Any:
        tx = emulator.books.pay(int(body["user_id"]), int(body["amount"]))
        return {"telegram_payment_charge_id": tx.id, "balance": emulator.books.balance}

    def refund_gift(request: web.Request, _body: dict[str, Any]) -> Any:
        tx = emulator.books.refund_gift(str(request.match_info["transaction_id"]))
        return {"refunded": tx.id, "amount": tx.amount, "balance": emulator.books.balance}

    def add_fault(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{kind, method?, user_id?, count?, retry_after?}`: `method` is a Bot API method (none: every one); an
        `outage` without a count lasts until cleared."""
        kind, method, user_id = str(body.get("kind")), body.get("method"), _int(body.get("user_id"))
        match: dict[str, Any] = {} if method is None else {"bot_method": str(method).lower()}
        if user_id is not None:
            match["user_id"] = user_id
        count = None if kind == FaultKind.OUTAGE and body.get("count") is None else int(body.get("count", 1))
        params = {"retry_after": int(body.get("retry_after", 1))}
        return emulator.faults.add(kind, count=count, match=match, params=params).to_json()

    def discrepancy(_request: web.Request, body: dict[str, Any]) -> Any:
        """A discrepancy shown in getStarTransactions (see `discrepancies`): 201 with the statement line id."""
        return web.json_response({"line_id": inject(emulator.books, body, int(time.time()))}, status=201)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        emulator.reset()
        return {"status": "reset"}

    for method, path, handler in [
        ("GET", "/state", state),
        ("POST", "/balance", set_balance),
        ("POST", "/gifts", set_gifts),
        ("POST", "/users", set_user),
        ("POST", "/payments", pay),
        ("POST", "/gift_refunds/{transaction_id}", refund_gift),
        ("POST", "/release", lambda _r, _b: {"released": emulator.books.release()}),
        ("POST", "/discrepancies", discrepancy),
        ("POST", "/reset", reset),
    ]:
        admin.route(method, path, handler)
    admin.faults(emulator.faults, add=add_fault)
    admin.requests(emulator.calls)
    admin.install(app)


def _bot_api_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, DiscrepancyError):
        return web.json_response({"error": str(err)}, status=err.status)
    if isinstance(err, BotApiError):
        return _answer(err.status, err.body())
    return None


__all__ = ["BOT_ID", "FAULT_KINDS", "BotCall", "Emulator", "create_app"]
