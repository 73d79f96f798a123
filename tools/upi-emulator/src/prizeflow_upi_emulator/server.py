"""The emulator's aiohttp app: `/v1` (the RazorpayX Payouts API subset, HTTP Basic with a key id and secret, faults)
and `/_emulator` (admin: the clock, rules, balance, downtime, payout levers, webhooks, discrepancies)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError, opt_bool, opt_int, opt_str, req_int, req_str
from prizeflow_emulator_kit.clock import Clock
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_emulator_kit.webhooks import DeliveryConfig, ReleaseOrder
from prizeflow_upi_emulator import discrepancies
from prizeflow_upi_emulator.bodies import account_number, count_skip
from prizeflow_upi_emulator.books import ALL_MODES, IDEMPOTENCY_HEADER, Books
from prizeflow_upi_emulator.errors import RazorpayError
from prizeflow_upi_emulator.rules import parse_rules
from prizeflow_upi_emulator.settings import MODES, EmulatorSettings
from prizeflow_upi_emulator.webhooks import RazorpayDeliverer, WebhookEndpoint

log = logging.getLogger(__name__)
API: Final = "/v1"
TICK_S: Final = 0.05  # how often the emulated bank looks at what came due (the clock decides what is due)
FAULT_KINDS: Final = (
    FaultKind.CONNECTION_RESET,  # cut before processing
    FaultKind.RATE_LIMIT,  # 429, not processed
    FaultKind.SERVER_ERROR,  # 500 SERVER_ERROR, not processed (the client cannot know that)
    FaultKind.OUTAGE,  # 502 from the load balancer (HTML, not JSON), not processed
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # processed, the answer held back `delay_ms`
    FaultKind.DROP_AFTER_SUCCESS,  # processed, then the connection cut
    FaultKind.SERVER_ERROR_AFTER_SUCCESS,  # processed, then answered 500
)


def dump(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json")


@dataclass
class UpiRequest(RequestEntry):
    key_id: str | None = None
    idempotency_key: str | None = None  # of a payout creation (also of one a fault answered)
    reference_id: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - delivery order shuffles, not cryptography
        self.clock = Clock()
        self.faults = Faults(FAULT_KINDS, path_prefixes=(API,))
        self.requests: RequestLog[UpiRequest] = RequestLog()
        self.deliverer = RazorpayDeliverer(
            WebhookEndpoint(settings.webhook_url, settings.webhook_secret),
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
            rng=self.rng,
        )
        self.books = Books(settings, self.clock.now, self.deliverer.on_event)
        self._ticker: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Forget every object, event, delivery, request, fault, rule change and clock move: back to the settings."""
        self.deliverer.reset()
        self.deliverer.config.duplicates, self.deliverer.config.hold = 1, False
        self.deliverer.endpoint.url, self.deliverer.endpoint.secret = (
            self.settings.webhook_url,
            self.settings.webhook_secret,
        )
        self.clock.reset()
        self.faults.reset()
        self.requests.clear()
        self.books = Books(self.settings, self.clock.now, self.deliverer.on_event)

    def tick(self) -> None:
        self.books.run_due(self.clock.now())

    async def start(self, _app: web.Application | None = None) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="upi-bank")

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.deliverer.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)  # the bank's pace, not synchronisation
            try:
                self.tick()
            except Exception:
                log.exception("the emulated bank's step failed")


EMULATOR_KEY: Final = web.AppKey("emulator", Emulator)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- /v1 --------------------------------------------------------------------------------------------------------------
@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        return await handler(request)
    em = request.app[EMULATOR_KEY]
    entry = em.requests.record(UpiRequest(request.method, request.path))
    try:
        entry.key_id = request["key_id"] = _authenticate(em, request)
    except RazorpayError as err:
        entry.status = err.status
        return dump(err.to_json(), err.status)
    if request.method == "POST" and request.path == f"{API}/payouts":
        entry.idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
        entry.reference_id = _reference_id(await request.read())

    async def carry_out() -> web.StreamResponse:
        try:
            return await handler(request)
        except RazorpayError as err:
            return dump(err.to_json(), err.status)

    return await strike(em.faults.take(request.method, request.path), request, carry_out, _refusal, entry)


def _authenticate(em: Emulator, request: web.Request) -> str:
    """HTTP Basic `key_id:key_secret`; the key id (idempotency keys are scoped to it)."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        raise RazorpayError(401, "Please provide your api key for authentication purposes.", reason="NA")
    try:
        key_id, _, secret = base64.b64decode(header.removeprefix("Basic "), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise RazorpayError(401, "The api key provided is invalid", reason="NA") from None
    if em.settings.keys.get(key_id) != secret:
        raise RazorpayError(401, "The api key provided is invalid", reason="NA")
    return key_id


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return dump(RazorpayError(429, "Too many requests", reason="NA").to_json(), 429)
    if fault.kind is FaultKind.OUTAGE:
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )
    return dump(RazorpayError.server_error().to_json(), 500)


def _reference_id(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    value = doc.get("reference_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


async def _json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise RazorpayError.invalid("The request body is not valid JSON.") from None


async def _object(request: web.Request) -> dict[str, Any]:
    body = await _json(request)
    if not isinstance(body, dict):
        raise RazorpayError.invalid("The request body must be a JSON object.")
    return body


def _collection(items: list[dict[str, Any]]) -> web.Response:
    return dump({"entity": "collection", "count": len(items), "items": items})


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


async def create_contact(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.create_contact(await _object(request)).to_json())


async def get_contact(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.contact(request.match_info["id"]).to_json())


async def list_contacts(request: web.Request) -> web.Response:
    books = _emulator(request).books
    count, skip = count_skip(request.query)
    contacts = sorted(books.contacts.values(), key=lambda c: c.created_at, reverse=True)
    return _collection([c.to_json() for c in contacts[skip : skip + count]])


async def create_fund_account(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.create_fund_account(await _object(request)).to_json())


async def get_fund_account(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.fund_account(request.match_info["id"]).to_json())


async def list_fund_accounts(request: web.Request) -> web.Response:
    books = _emulator(request).books
    count, skip = count_skip(request.query)
    contact_id = request.query.get("contact_id")
    chosen = [f for f in books.fund_accounts.values() if contact_id in (None, f.contact_id)]
    chosen.sort(key=lambda f: f.created_at, reverse=True)
    return _collection([f.to_json() for f in chosen[skip : skip + count]])


async def create_validation(request: web.Request) -> web.Response:
    books = _emulator(request).books
    made = books.create_validation(await _object(request))
    return dump(made.to_json(books.fund_accounts[made.fund_account_id]))


async def get_validation(request: web.Request) -> web.Response:
    books = _emulator(request).books
    found = books.validation(request.match_info["id"])
    return dump(found.to_json(books.fund_accounts[found.fund_account_id]))


async def list_validations(request: web.Request) -> web.Response:
    books = _emulator(request).books
    account_number(request.query, books.settings.account_number)
    count, skip = count_skip(request.query)
    chosen = sorted(books.validations.values(), key=lambda v: v.created_at, reverse=True)[skip : skip + count]
    return _collection([v.to_json(books.fund_accounts[v.fund_account_id]) for v in chosen])


async def create_payout(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return dump(books.create_payout(request["key_id"], request.headers.get(IDEMPOTENCY_HEADER), await _json(request)))


async def get_payout(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return dump(books.payout(request.match_info["id"]).to_json(books.settings.account_number))


async def list_payouts(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return _collection([p.to_json(books.settings.account_number) for p in books.list_payouts(request.query)])


async def cancel_payout(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return dump(books.cancel(request.match_info["id"]).to_json(books.settings.account_number))


async def list_transactions(request: web.Request) -> web.Response:
    return _collection(_emulator(request).books.list_transactions(request.query))


async def get_transaction(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.transaction(request.match_info["id"]))


async def banking_balances(request: web.Request) -> web.Response:
    return _collection([_emulator(request).books.banking_balance()])


async def not_found(_request: web.Request) -> web.Response:
    raise RazorpayError.invalid("The requested URL was not found on the server.")


# -- /_emulator -------------------------------------------------------------------------------------------------------
def install_admin(em: Emulator, app: web.Application) -> None:  # noqa: PLR0915 - one small handler per route
    admin = Admin(errors=_admin_error)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.reset()
        return {"status": "reset"}

    def rules(_request: web.Request, _body: dict[str, Any]) -> Any:
        return {"rules": [r.to_json() for r in em.books.rules]}

    def add_rules(_request: web.Request, body: dict[str, Any]) -> Any:
        """Rules put in front of those in force (the first match wins)."""
        em.books.rules[:0] = parse_rules(body.get("rules"))
        return rules(_request, body)

    def replace_rules(_request: web.Request, body: dict[str, Any]) -> Any:
        em.books.rules = parse_rules(body.get("rules"))
        return rules(_request, body)

    def top_up(_request: web.Request, body: dict[str, Any]) -> Any:
        txn = em.books.top_up(req_int(body, "amount"))
        return {"transaction_id": txn.id, **em.books.banking_balance()}

    def downtime(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"mode": "UPI" | "IMPS" | "NEFT" | "RTGS" | "*", "down": true | false}`."""
        mode = opt_str(body, "mode") or ALL_MODES
        down = opt_bool(body, "down")
        if mode not in (*MODES, ALL_MODES) or down is None:
            raise AdminError(f"mode is one of {[*MODES, ALL_MODES]} and down is true or false")
        em.books.set_down(mode, down)
        return {"down": sorted(em.books.down)}

    def payouts(request: web.Request, _body: dict[str, Any]) -> Any:
        """Every payout as the API shows it, `missing` ones too (flagged), also during an API outage."""
        query = request.query
        chosen = [
            {**p.to_json(em.settings.account_number), "idempotency_key": p.idempotency_key, "hidden": p.hidden}
            for p in sorted(em.books.payouts.values(), key=lambda p: p.seq)
            if all(
                query.get(k) in (None, v)
                for k, v in (
                    ("reference_id", p.reference_id),
                    ("idempotency_key", p.idempotency_key),
                    ("status", p.status),
                )
            )
        ]
        return {"payouts": chosen}

    def lever(action: str) -> Callable[[web.Request, dict[str, Any]], Any]:
        def handle(request: web.Request, body: dict[str, Any]) -> Any:
            pid = request.match_info["id"]
            if action == "approve":
                payout = em.books.approve(pid)
            elif action == "reject":
                payout = em.books.reject(pid)
            else:
                payout = em.books.settle(pid, req_str(body, "outcome"), opt_str(body, "reason"))
            return payout.to_json(em.settings.account_number)

        return handle

    def events(request: web.Request, _body: dict[str, Any]) -> Any:
        kind, subject = request.query.get("event"), request.query.get("subject_id")
        return {
            "events": [
                {
                    "id": e.id,
                    "event": e.event,
                    "subject_id": e.subject_id,
                    "created_at": e.created_at,
                    "body": json.loads(e.body),
                }
                for e in em.books.events
                if kind in (None, e.event) and subject in (None, e.subject_id)
            ]
        }

    def redeliver(request: web.Request, _body: dict[str, Any]) -> Any:
        wanted = request.match_info["id"]
        found = next((e for e in em.books.events if e.id == wanted), None)
        if found is None:
            raise AdminError("no such event", status=404)
        em.deliverer.redeliver(found)
        return {"ok": True}

    def webhook_config(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"url", "secret", "duplicates", "hold", "retry_base_ms", "max_attempts", "timeout_ms"}`: any subset."""
        em.deliverer.config.update({k: v for k, v in body.items() if k not in ("url", "secret")})
        if "url" in body:
            em.deliverer.endpoint.url = opt_str(body, "url") or None
        if "secret" in body:
            em.deliverer.endpoint.secret = opt_str(body, "secret") or None
        return em.deliverer.to_json()

    def webhook_release(_request: web.Request, body: dict[str, Any]) -> Any:
        """The held deliveries, in recorded order, reversed or shuffled (`seed`); how many were released."""
        try:
            order = ReleaseOrder(opt_str(body, "order") or "fifo")
        except ValueError:
            raise AdminError("order is fifo, reverse or shuffle") from None
        return {"released": len(em.deliverer.release(order, seed=opt_int(body, "seed")))}

    def discrepancy(_request: web.Request, body: dict[str, Any]) -> Any:
        return dump({"line_id": discrepancies.inject(em.books, body)}, 201)

    def stats(_request: web.Request, _body: dict[str, Any]) -> Any:
        by_status: dict[str, int] = {}
        for p in em.books.payouts.values():
            if p.status is not None and not p.hidden:
                by_status[p.status.value] = by_status.get(p.status.value, 0) + 1
        return {"payouts_created": em.books.created, "balance": em.books.balance(), "payouts": by_status}

    for method, path, handler in [
        ("POST", "/reset", reset),
        ("GET", "/rules", rules),
        ("POST", "/rules", add_rules),
        ("PUT", "/rules", replace_rules),
        ("GET", "/balance", lambda _r, _b: em.books.banking_balance()),
        ("POST", "/balance", top_up),
        ("POST", "/downtime", downtime),
        ("GET", "/payouts", payouts),
        ("POST", "/payouts/{id}/approve", lever("approve")),
        ("POST", "/payouts/{id}/reject", lever("reject")),
        ("POST", "/payouts/{id}/settle", lever("settle")),
        ("GET", "/events", events),
        ("POST", "/events/{id}/deliver", redeliver),
        ("GET", "/webhooks", lambda _r, _b: em.deliverer.to_json()),
        ("POST", "/webhooks", webhook_config),
        ("POST", "/webhooks/release", webhook_release),
        ("POST", "/discrepancies", discrepancy),
        ("GET", "/stats", stats),
    ]:
        admin.route(method, path, handler)
    admin.clock(em.clock, moved=em.tick)
    admin.faults(em.faults)
    admin.requests(em.requests)
    admin.install(app)


def _admin_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, RazorpayError):
        return dump(err.to_json(), err.status)
    if isinstance(err, discrepancies.DiscrepancyError):
        return dump({"error": str(err)}, err.status)
    return None


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=1024 * 1024)
    app[EMULATOR_KEY] = emulator
    r = app.router
    r.add_post(f"{API}/contacts", create_contact)
    r.add_get(f"{API}/contacts", list_contacts)
    r.add_get(f"{API}/contacts/{{id}}", get_contact)
    r.add_post(f"{API}/fund_accounts/validations", create_validation)
    r.add_get(f"{API}/fund_accounts/validations", list_validations)
    r.add_get(f"{API}/fund_accounts/validations/{{id}}", get_validation)
    r.add_post(f"{API}/fund_accounts", create_fund_account)
    r.add_get(f"{API}/fund_accounts", list_fund_accounts)
    r.add_get(f"{API}/fund_accounts/{{id}}", get_fund_account)
    r.add_post(f"{API}/payouts", create_payout)
    r.add_get(f"{API}/payouts", list_payouts)
    r.add_get(f"{API}/payouts/{{id}}", get_payout)
    r.add_post(f"{API}/payouts/{{id}}/cancel", cancel_payout)
    r.add_get(f"{API}/transactions", list_transactions)
    r.add_get(f"{API}/transactions/{{id}}", get_transaction)
    r.add_get(f"{API}/banking_balances", banking_balances)
    install_admin(emulator, app)
    r.add_route("*", f"{API}/{{tail:.*}}", not_found)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.stop)
    return app


__all__ = ["EMULATOR_KEY", "FAULT_KINDS", "Emulator", "UpiRequest", "create_app"]
