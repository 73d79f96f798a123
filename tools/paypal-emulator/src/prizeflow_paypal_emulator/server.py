"""The emulator's aiohttp app: `/v1` (OAuth2, the Payouts API, Transaction Search, webhook certificates and signature
verification; bearer tokens, faults) and `/_emulator` (admin: the clock, rules, balance, item levers, webhooks,
discrepancies)."""

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
from urllib.parse import urlsplit

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError, opt_int, opt_str, req_str
from prizeflow_emulator_kit.clock import Clock
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_emulator_kit.webhooks import DeliveryConfig, ReleaseOrder
from prizeflow_paypal_emulator import discrepancies
from prizeflow_paypal_emulator.books import REQUEST_ID_HEADER, Books
from prizeflow_paypal_emulator.entities import Event
from prizeflow_paypal_emulator.errors import WEBHOOKS_ERRORS, OAuthError, PayPalError, detail
from prizeflow_paypal_emulator.money import CURRENCIES, parse_value
from prizeflow_paypal_emulator.rules import IllegalTransitionError, parse_rules
from prizeflow_paypal_emulator.settings import EmulatorSettings
from prizeflow_paypal_emulator.signing import AUTH_ALGO
from prizeflow_paypal_emulator.webhooks import PayPalDeliverer, WebhookEndpoint

log = logging.getLogger(__name__)
API: Final = "/v1"
TOKEN_PATH: Final = f"{API}/oauth2/token"
PAYOUTS_PATH: Final = f"{API}/payments/payouts"
CERTS_PATH: Final = f"{API}/notifications/certs"
TICK_S: Final = 0.05  # how often the emulated PayPal looks at what came due (the clock decides what is due)
FAULT_KINDS: Final = (
    FaultKind.CONNECTION_RESET,  # cut before processing
    FaultKind.RATE_LIMIT,  # 429 RATE_LIMIT_REACHED, not processed
    FaultKind.SERVER_ERROR,  # 500 INTERNAL_SERVICE_ERROR, not processed (the client cannot know that)
    FaultKind.OUTAGE,  # 502 from the load balancer (HTML, not JSON), not processed
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # processed, the answer held back `delay_ms`
    FaultKind.DROP_AFTER_SUCCESS,  # processed, then the connection cut
    FaultKind.SERVER_ERROR_AFTER_SUCCESS,  # processed, then answered 500
)
VERIFY_FIELDS: Final = (
    "auth_algo",
    "cert_url",
    "transmission_id",
    "transmission_sig",
    "transmission_time",
    "webhook_id",
)


def dump(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(doc, separators=(",", ":")), content_type="application/json")


@dataclass
class PayPalRequest(RequestEntry):
    client_id: str | None = None
    request_id: str | None = None  # PayPal-Request-Id of a batch creation (also of one a fault answered)
    sender_batch_id: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - delivery order shuffles, not cryptography
        self.clock = Clock()
        self.faults = Faults(FAULT_KINDS, path_prefixes=(API,))
        self.requests: RequestLog[PayPalRequest] = RequestLog()
        self.deliverer = PayPalDeliverer(
            WebhookEndpoint(settings.webhook_url, settings.webhook_id),
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
            settings.signing,
            self.cert_url,
            rng=self.rng,
            clock=self.clock.now,
        )
        self.books = Books(settings, self.clock.now, self.deliverer.on_event)
        self._ticker: asyncio.Task[None] | None = None

    @property
    def cert_url(self) -> str:
        return f"{self.settings.base_url}{CERTS_PATH}/{self.settings.signing.cert_id}"

    def reset(self) -> None:
        """Forget every token, batch, movement, event, delivery, request, fault, rule change and clock move."""
        self.deliverer.reset()
        cfg = self.deliverer.config
        cfg.duplicates, cfg.hold, cfg.timestamp_offset_s = 1, False, 0
        cfg.retry_base_ms = self.settings.webhook_retry_base_ms
        cfg.max_attempts, cfg.timeout_ms = self.settings.webhook_max_attempts, self.settings.webhook_timeout_ms
        self.deliverer.endpoint.url = self.settings.webhook_url
        self.deliverer.endpoint.webhook_id = self.settings.webhook_id
        self.clock.reset()
        self.faults.reset()
        self.requests.clear()
        self.books = Books(self.settings, self.clock.now, self.deliverer.on_event)

    def tick(self) -> None:
        self.books.run_due(self.clock.now())

    def sent_body(self, event: dict[str, Any]) -> bytes:
        """The bytes a posted `webhook_event` was delivered as (its CRC32 was signed): the event as sent when it is
        one of ours unchanged, else the posted object serialized compactly."""
        found = next((e for e in self.books.events if e.id == event.get("id")), None)
        if found is not None and json.loads(found.body) == event:
            return found.body
        return json.dumps(event, separators=(",", ":")).encode()

    async def start(self, _app: web.Application | None = None) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="paypal-payouts")

    async def stop(self, _app: web.Application | None = None) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.deliverer.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)  # PayPal's pace, not synchronisation
            try:
                self.tick()
            except Exception:
                log.exception("the emulated PayPal's step failed")


EMULATOR_KEY: Final = web.AppKey("emulator", Emulator)
ENTRY_KEY: Final = web.RequestKey("paypal_request", PayPalRequest)  # the call's request log entry
CLIENT_KEY: Final = web.RequestKey("client_id", str)  # the REST app its bearer token was issued to
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- /v1 --------------------------------------------------------------------------------------------------------------
@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        return await handler(request)
    em = request.app[EMULATOR_KEY]
    entry = request[ENTRY_KEY] = em.requests.record(PayPalRequest(request.method, request.path))
    if request.path != TOKEN_PATH and not request.path.startswith(CERTS_PATH + "/"):
        try:  # the token route takes the client's Basic credentials; a certificate is public
            entry.client_id = request[CLIENT_KEY] = em.books.authenticate(request.headers.get("Authorization", ""))
        except OAuthError as err:
            entry.status = err.status
            return dump(err.to_json(), err.status)
    if request.method == "POST" and request.path == PAYOUTS_PATH:
        entry.request_id = request.headers.get(REQUEST_ID_HEADER)
        entry.sender_batch_id = _sender_batch_id(await request.read())

    async def carry_out() -> web.StreamResponse:
        try:
            return await handler(request)
        except (PayPalError, OAuthError) as err:
            return dump(err.to_json(), err.status)

    return await strike(em.faults.take(request.method, request.path), request, carry_out, _refusal, entry)


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return dump(PayPalError.rate_limited().to_json(), 429)
    if fault.kind is FaultKind.OUTAGE:
        return web.Response(
            status=502, text="<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
        )
    return dump(PayPalError.internal().to_json(), 500)


def _sender_batch_id(raw: bytes) -> str | None:
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    header = doc.get("sender_batch_header") if isinstance(doc, dict) else None
    value = header.get("sender_batch_id") if isinstance(header, dict) else None
    return value if isinstance(value, str) else None


async def _json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise PayPalError.malformed() from None


def _emulator(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


def _client(em: Emulator, header: str) -> str:
    """HTTP Basic `client_id:secret` of a REST app; its client id."""
    scheme, _, encoded = header.partition(" ")
    if scheme != "Basic" or not encoded:
        raise OAuthError(401, "invalid_client", "Client Authentication failed")
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError(401, "invalid_client", "Client Authentication failed") from None
    if em.settings.clients.get(client_id) != secret:
        raise OAuthError(401, "invalid_client", "Client Authentication failed")
    return client_id


async def token(request: web.Request) -> web.Response:
    """POST /v1/oauth2/token: `grant_type=client_credentials` (a form) under the app's Basic credentials."""
    em = _emulator(request)
    client_id = request[ENTRY_KEY].client_id = _client(em, request.headers.get("Authorization", ""))
    form = await request.post()
    grant = form.get("grant_type")
    if not isinstance(grant, str) or not grant:
        raise OAuthError(400, "unsupported_grant_type", "Grant Type is NULL")
    if grant != "client_credentials":
        raise OAuthError(400, "unsupported_grant_type", f"Grant Type {grant} is not supported")
    return dump(em.books.issue_token(client_id))


async def create_payouts(request: web.Request) -> web.Response:
    books = _emulator(request).books
    doc = books.create_batch(request[CLIENT_KEY], request.headers.get(REQUEST_ID_HEADER), await _json(request))
    return dump(doc, 201)


async def get_batch(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.batch_json(request.match_info["id"], request.query))


async def get_item(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return dump(books.item_json(books.item(request.match_info["id"])))


async def cancel_item(request: web.Request) -> web.Response:
    books = _emulator(request).books
    return dump(books.item_json(books.cancel(request.match_info["id"])))


async def transactions(request: web.Request) -> web.Response:
    return dump(_emulator(request).books.search(request.query))


async def certificate(request: web.Request) -> web.Response:
    """The signing certificate (PEM) that PAYPAL-CERT-URL names; public, as PayPal's is."""
    signing = _emulator(request).settings.signing
    if request.match_info["cert_id"] != signing.cert_id:
        raise PayPalError(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")
    return web.Response(body=signing.cert_pem, content_type="application/x-pem-file")


async def verify_signature(request: web.Request) -> web.Response:
    """POST /v1/notifications/verify-webhook-signature: SUCCESS when the signature is ours over the transmission id,
    time, the webhook id in force and the event's CRC32, under SHA256withRSA and our certificate's URL."""
    em = _emulator(request)
    body = await _json(request)
    if not isinstance(body, dict):
        raise PayPalError.malformed()
    problems = [
        detail(name, "Required field is missing or not a string")
        for name in VERIFY_FIELDS
        if not isinstance(body.get(name), str) or not body[name]
    ]
    event = body.get("webhook_event")
    if not isinstance(event, dict):
        problems.append(detail("webhook_event", "Required field is missing or not an object"))
    if problems:
        raise PayPalError.validation(problems, link=WEBHOOKS_ERRORS)
    assert isinstance(event, dict)
    cert_path = urlsplit(body["cert_url"]).path
    ok = (
        body["auth_algo"] == AUTH_ALGO
        and cert_path.endswith(f"{CERTS_PATH}/{em.settings.signing.cert_id}")  # behind a prefix too
        and body["webhook_id"] == em.deliverer.endpoint.webhook_id
        and em.settings.signing.verify(
            body["transmission_sig"],
            body["transmission_id"],
            body["transmission_time"],
            body["webhook_id"],
            em.sent_body(event),
        )
    )
    return dump({"verification_status": "SUCCESS" if ok else "FAILURE"})


async def not_found(_request: web.Request) -> web.Response:
    raise PayPalError(404, "RESOURCE_NOT_FOUND", "The specified resource does not exist.")


# -- /_emulator -------------------------------------------------------------------------------------------------------
def install_admin(em: Emulator, app: web.Application) -> None:  # noqa: PLR0915 - one small handler per route
    admin = Admin(errors=_admin_error)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.reset()
        return {"status": "reset"}

    def rules(_request: web.Request, _body: dict[str, Any]) -> Any:
        return {"rules": [r.to_json() for r in em.books.rules]}

    def add_rules(request: web.Request, body: dict[str, Any]) -> Any:
        """Rules put in front of those in force (the first match wins)."""
        em.books.rules[:0] = parse_rules(body.get("rules"))
        return rules(request, body)

    def replace_rules(request: web.Request, body: dict[str, Any]) -> Any:
        em.books.rules = parse_rules(body.get("rules"))
        return rules(request, body)

    def top_up(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"currency": "USD", "value": "100.00"}`: money added to the account (a T0300 line)."""
        currency, raw = req_str(body, "currency"), req_str(body, "value")
        value = parse_value(raw, currency) if currency in CURRENCIES else None
        if value is None:
            raise AdminError("currency is a PayPal currency and value a decimal string with its decimals")
        line = em.books.top_up(currency, value)
        return {"transaction_id": line.transaction_id, **em.books.balances()}

    def batches(request: web.Request, _body: dict[str, Any]) -> Any:
        """Every batch with its items as the API shows them (`missing` ones flagged `hidden`), also during an outage."""
        wanted = request.query.get("sender_batch_id")
        out = []
        for b in em.books.batches.values():
            if wanted not in (None, b.sender_batch_id):
                continue
            items = [{**em.books.item_json(em.books.items[i]), "hidden": em.books.items[i].hidden} for i in b.item_ids]
            out.append({"batch_header": b.header(em.books.batch_items(b)), "hidden": b.hidden, "items": items})
        return {"batches": out}

    def items(request: web.Request, _body: dict[str, Any]) -> Any:
        query = request.query
        chosen = [
            {**em.books.item_json(i), "hidden": i.hidden}
            for i in sorted(em.books.items.values(), key=lambda i: i.seq)
            if all(
                query.get(k) in (None, v)
                for k, v in (("sender_item_id", i.sender_item_id), ("status", i.status.value), ("receiver", i.receiver))
            )
        ]
        return {"items": chosen}

    def lever(action: str) -> Callable[[web.Request, dict[str, Any]], Any]:
        def handle(request: web.Request, body: dict[str, Any]) -> Any:
            item_id = request.match_info["id"]
            books = em.books
            if action == "release":
                item = books.release(item_id)
            elif action == "refund":
                item = books.refund(item_id)
            elif action == "reverse":
                item = books.reverse(item_id)
            elif action == "return":
                item = books.return_item(item_id)
            else:
                item = books.fail(item_id, opt_str(body, "error"))
            return books.item_json(item)

        return handle

    def events(request: web.Request, _body: dict[str, Any]) -> Any:
        kind, subject = request.query.get("event_type"), request.query.get("subject_id")
        return {
            "events": [
                {"id": e.id, "event_type": e.event_type, "subject_id": e.subject_id, "body": json.loads(e.body)}
                for e in em.books.events
                if kind in (None, e.event_type) and subject in (None, e.subject_id)
            ]
        }

    def redeliver(request: web.Request, _body: dict[str, Any]) -> Any:
        found = _event(em, request.match_info["id"])
        em.deliverer.redeliver(found)
        return {"ok": True}

    def webhook_config(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"url", "webhook_id", "duplicates", "hold", "retry_base_ms", "max_attempts", "timeout_ms",
        "timestamp_offset_s"}`: any subset."""
        em.deliverer.config.update({k: v for k, v in body.items() if k not in ("url", "webhook_id")})
        if "url" in body:
            em.deliverer.endpoint.url = opt_str(body, "url") or None
        if "webhook_id" in body:
            em.deliverer.endpoint.webhook_id = opt_str(body, "webhook_id") or None
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
        for i in em.books.items.values():
            if not i.hidden:
                by_status[i.status.value] = by_status.get(i.status.value, 0) + 1
        return {"batches_created": em.books.created, "items": by_status, **em.books.balances()}

    for method, path, handler in [
        ("POST", "/reset", reset),
        ("GET", "/rules", rules),
        ("POST", "/rules", add_rules),
        ("PUT", "/rules", replace_rules),
        ("GET", "/balance", lambda _r, _b: em.books.balances()),
        ("POST", "/balance", top_up),
        ("GET", "/batches", batches),
        ("GET", "/items", items),
        ("POST", "/items/{id}/release", lever("release")),
        ("POST", "/items/{id}/refund", lever("refund")),
        ("POST", "/items/{id}/reverse", lever("reverse")),
        ("POST", "/items/{id}/return", lever("return")),
        ("POST", "/items/{id}/fail", lever("fail")),
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


def _event(em: Emulator, event_id: str) -> Event:
    found = next((e for e in em.books.events if e.id == event_id), None)
    if found is None:
        raise AdminError("no such event", status=404)
    return found


def _admin_error(err: Exception) -> web.StreamResponse | None:
    if isinstance(err, PayPalError):
        return dump(err.to_json(), err.status)
    if isinstance(err, discrepancies.DiscrepancyError):
        return dump({"error": str(err)}, err.status)
    if isinstance(err, IllegalTransitionError):
        return dump({"error": str(err)}, 409)
    return None


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=8 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    r = app.router
    r.add_post(TOKEN_PATH, token)
    r.add_post(PAYOUTS_PATH, create_payouts)
    r.add_get(f"{PAYOUTS_PATH}/{{id}}", get_batch)
    r.add_get(f"{API}/payments/payouts-item/{{id}}", get_item)
    r.add_post(f"{API}/payments/payouts-item/{{id}}/cancel", cancel_item)
    r.add_get(f"{API}/reporting/transactions", transactions)
    r.add_get(f"{CERTS_PATH}/{{cert_id}}", certificate)
    r.add_post(f"{API}/notifications/verify-webhook-signature", verify_signature)
    install_admin(emulator, app)
    r.add_route("*", f"{API}/{{tail:.*}}", not_found)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.stop)
    return app


__all__ = ["EMULATOR_KEY", "FAULT_KINDS", "Emulator", "PayPalRequest", "create_app"]
