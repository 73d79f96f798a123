"""The emulator's aiohttp app: `/api/v2` (the API subset, Bearer-key auth, faults) and `/_emulator` (admin)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web

from prizeflow_giftcard_emulator.faults import FaultKind, Faults
from prizeflow_giftcard_emulator.settings import EmulatorSettings
from prizeflow_giftcard_emulator.state import ApiError, Outcome, Store
from prizeflow_giftcard_emulator.webhooks import Deliverer, WebhookConfig

log = logging.getLogger(__name__)
API = "/api/v2"


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Amounts have at most 2 decimals: the shortest float repr is that decimal exactly.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def dump(doc: Any, status: int = 200) -> web.Response:
    text = json.dumps(doc, default=json_default, separators=(",", ":"))
    return web.Response(status=status, text=text, content_type="application/json")


@dataclass
class RequestEntry:
    method: str
    path: str
    external_id: str | None
    at: float
    status: int | None = None
    fault: str | None = None


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.requests: deque[RequestEntry] = deque(maxlen=100_000)
        self.deliverer = Deliverer(
            WebhookConfig(
                url=settings.webhook_url,
                private_key=settings.webhook_private_key,
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            )
        )
        self.store = self._new_store()
        self._ticker: asyncio.Task[None] | None = None

    def _new_store(self) -> Store:
        s = self.settings
        return Store(
            balances=dict(s.balances),
            external_id_conflict=s.external_id_conflict,
            delivery_delay_ms=s.delivery_delay_ms,
            approvals_required=s.approvals_required,
            links_for_email=s.links_for_email,
            base_url=f"http://{s.host}:{s.port}",
            listener=self.deliverer.submit,
        )

    def reset(self) -> None:
        self.store = self._new_store()
        self.faults.clear()
        self.requests.clear()
        self.deliverer.held.clear()
        self.deliverer.config.duplicates, self.deliverer.config.hold = 1, False

    async def start(self) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="giftcard-delivery")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.deliverer.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)  # the emulated provider's delivery clock
            self.store.advance()


# -- /api/v2 ------------------------------------------------------------------------------------------------------
@web.middleware
async def api_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith(API + "/"):
        passed: web.StreamResponse = await handler(request)
        return passed
    em: Emulator = request.app["emulator"]
    entry = RequestEntry(request.method, request.path, None, time.time())
    em.requests.append(entry)
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in em.settings.api_keys:
        entry.status = 401
        return dump(ApiError(401, "Authentication failed").to_json(), 401)
    if request.method == "POST" and request.path == f"{API}/orders":
        entry.external_id = _external_id(await request.read())
    fault = em.faults.take(request.method, request.path)
    if fault is not None:
        entry.fault = fault.kind.value
        if fault.kind is FaultKind.SERVER_ERROR:
            entry.status = 500
            return dump(ApiError(500, "Internal server error").to_json(), 500)
        if fault.kind is FaultKind.RATE_LIMIT:
            entry.status = 429
            return dump(ApiError(429, "Too many requests").to_json(), 429)
        if fault.kind is FaultKind.CONNECTION_RESET:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
    try:
        response: web.StreamResponse = await handler(request)
    except ApiError as err:
        entry.status = err.status
        return dump(err.to_json(), err.status)
    entry.status = response.status
    if fault is not None and fault.kind.after_processing:
        await asyncio.sleep(fault.delay_ms / 1000)  # the answer comes too late: the client has given up
    return response


def _external_id(raw: bytes) -> str | None:
    """The order's external id, for the request log (also of calls a fault answered)."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    value = doc.get("external_id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read(), parse_float=Decimal)
    except ValueError:
        raise ApiError(400, "The request body is not JSON") from None


async def products(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump({"products": [p.to_json() for p in em.store.products.values()]})


async def create_order(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    body = await _body(request)
    status, order = em.store.create_order(body)
    return dump({"order": order.to_json()}, status)


async def list_orders(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump(em.store.list_orders(request.query))


async def get_order(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump({"order": em.store.order(request.match_info["id"]).to_json()})


async def get_reward(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump({"reward": em.store.reward(request.match_info["id"]).to_json()})


async def cancel_reward(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump({"reward": em.store.cancel_reward(request.match_info["id"]).to_json()})


async def decide(request: web.Request, *, approve: bool) -> web.Response:
    em: Emulator = request.app["emulator"]
    oid = request.match_info["id"]
    order = em.store.approve(oid) if approve else em.store.reject(oid)
    return dump({"order": order.to_json()})


# -- /_emulator ---------------------------------------------------------------------------------------------------
async def health(request: web.Request) -> web.Response:
    return dump({"ok": True})


async def reset(request: web.Request) -> web.Response:
    request.app["emulator"].reset()
    return dump({"ok": True})


async def admin_json(request: web.Request) -> dict[str, Any]:
    try:
        doc = json.loads(await request.read() or b"{}")
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(doc, dict):
        raise web.HTTPBadRequest(text="a JSON object")
    return doc


async def steer(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    doc = await admin_json(request)
    try:
        em.store.recipients[str(doc["email"]).lower()] = Outcome(doc.get("outcome", "deliver"))
    except (KeyError, ValueError) as err:
        raise web.HTTPBadRequest(text=f"email and outcome ({err})") from None
    return dump({"ok": True})


async def admin_decide(request: web.Request, *, approve: bool) -> web.Response:
    try:
        return await decide(request, approve=approve)
    except ApiError as err:
        return dump(err.to_json(), err.status)


async def fail_delivery(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    try:
        return dump({"reward": em.store.fail_delivery(request.match_info["id"]).to_json()})
    except ApiError as err:
        return dump(err.to_json(), err.status)


async def cancel_delivered(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    try:
        return dump({"reward": em.store.cancel_delivered(request.match_info["id"]).to_json()})
    except ApiError as err:
        return dump(err.to_json(), err.status)


async def bounce_after_delivery(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    try:
        return dump({"reward": em.store.bounce_after_delivery(request.match_info["id"]).to_json()})
    except ApiError as err:
        return dump(err.to_json(), err.status)


async def add_fault(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    doc = await admin_json(request)
    try:
        rule = em.faults.add(
            str(doc["kind"]),
            method=str(doc.get("method", "*")),
            path_prefix=str(doc.get("path_prefix", API + "/")),
            count=int(doc.get("count", 1)),
            delay_ms=int(doc.get("delay_ms", 30_000)),
        )
    except (KeyError, ValueError) as err:
        raise web.HTTPBadRequest(text=f"bad fault ({err})") from None
    return dump(rule.to_json())


async def clear_faults(request: web.Request) -> web.Response:
    request.app["emulator"].faults.clear()
    return dump({"ok": True})


async def requests_log(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    method, path = request.query.get("method"), request.query.get("path")
    chosen = [
        asdict(e)
        for e in em.requests
        if (method is None or e.method == method.upper()) and (path is None or e.path == path)
    ]
    return dump({"requests": chosen})


async def events(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    kind = request.query.get("event")
    chosen = [e for e in em.store.events if kind is None or e.event == kind]
    return dump({"events": [{**e.to_json(), "order_id": e.order_id} for e in chosen]})


async def redeliver(request: web.Request) -> web.Response:
    """One event delivered again now (a duplicate, or a late one: out of order)."""
    em: Emulator = request.app["emulator"]
    wanted = request.match_info["uuid"]
    found = next((e for e in em.store.events if e.uuid == wanted), None)
    if found is None:
        raise web.HTTPNotFound(text="no such event")
    em.deliverer.release(reverse=False)
    em.deliverer._queue.put_nowait(found)
    return dump({"ok": True})


async def webhook_config(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    doc = await admin_json(request)
    cfg = em.deliverer.config
    if "url" in doc:
        cfg.url = doc["url"] or None
    if "private_key" in doc:
        cfg.private_key = doc["private_key"] or None
    cfg.duplicates = int(doc.get("duplicates", cfg.duplicates))
    cfg.hold = bool(doc.get("hold", cfg.hold))
    return dump(em.deliverer.to_json())


async def webhook_release(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    doc = await admin_json(request)
    em.deliverer.config.hold = False
    return dump({"released": em.deliverer.release(reverse=bool(doc.get("reverse", False)))})


async def deliveries(request: web.Request) -> web.Response:
    return dump(request.app["emulator"].deliverer.to_json())


async def admin_orders(request: web.Request) -> web.Response:
    """Every order, as the API shows it (answers during an API outage; tests count what was really paid)."""
    em: Emulator = request.app["emulator"]
    external_id = request.query.get("external_id")
    chosen = [o for o in em.store.orders.values() if external_id is None or o.external_id == external_id]
    return dump({"orders": [o.to_json() for o in chosen]})


async def discrepancy(request: web.Request) -> web.Response:
    """The provider's books made to differ from what Prizeflow asked for (see the README): 201 with the statement
    line created or changed."""
    em: Emulator = request.app["emulator"]
    doc = await admin_json(request)
    amount = doc.get("amount")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
        return dump(ApiError(400, "amount must be an integer (minor units)").to_json(), 400)
    fields = {name: doc.get(name) for name in ("kind", "reference", "asset", "destination")}
    if not all(v is None or isinstance(v, str) for v in fields.values()) or not fields["kind"]:
        return dump(ApiError(400, "kind is required; reference, asset and destination are strings").to_json(), 400)
    try:
        line_id = em.store.inject_discrepancy(
            str(fields["kind"]),
            reference=fields["reference"],
            amount=amount,
            asset=fields["asset"],
            destination=fields["destination"],
        )
    except ApiError as err:
        return dump(err.to_json(), err.status)
    return dump({"line_id": line_id}, 201)


async def stats(request: web.Request) -> web.Response:
    em: Emulator = request.app["emulator"]
    return dump({"orders_created": em.store.created, "balances": em.store.balances})


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(middlewares=[api_middleware])
    app["emulator"] = emulator
    r = app.router
    r.add_get(f"{API}/products", products)
    r.add_post(f"{API}/orders", create_order)
    r.add_get(f"{API}/orders", list_orders)
    r.add_get(f"{API}/orders/{{id}}", get_order)
    r.add_get(f"{API}/rewards/{{id}}", get_reward)
    r.add_post(f"{API}/rewards/{{id}}/cancel", cancel_reward)
    r.add_post(f"{API}/order_approvals/{{id}}/approve", partial(decide, approve=True))
    r.add_post(f"{API}/order_approvals/{{id}}/reject", partial(decide, approve=False))
    r.add_get("/_emulator/health", health)
    r.add_get("/health/live", health)  # what the devstack's supervisor waits on
    r.add_get("/health/ready", health)
    r.add_post("/_emulator/reset", reset)
    r.add_post("/_emulator/recipients", steer)
    r.add_post("/_emulator/orders/{id}/approve", partial(admin_decide, approve=True))
    r.add_post("/_emulator/orders/{id}/reject", partial(admin_decide, approve=False))
    r.add_post("/_emulator/rewards/{id}/fail", fail_delivery)
    r.add_post("/_emulator/rewards/{id}/cancel_delivered", cancel_delivered)
    r.add_post("/_emulator/rewards/{id}/bounce", bounce_after_delivery)
    r.add_post("/_emulator/faults", add_fault)
    r.add_delete("/_emulator/faults", clear_faults)
    r.add_get("/_emulator/requests", requests_log)
    r.add_get("/_emulator/events", events)
    r.add_post("/_emulator/events/{uuid}/deliver", redeliver)
    r.add_post("/_emulator/webhooks", webhook_config)
    r.add_post("/_emulator/webhooks/release", webhook_release)
    r.add_get("/_emulator/webhooks", deliveries)
    r.add_get("/_emulator/orders", admin_orders)
    r.add_get("/_emulator/stats", stats)
    r.add_post("/_emulator/discrepancies", discrepancy)

    async def on_startup(_: web.Application) -> None:
        await emulator.start()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


__all__ = ["Emulator", "create_app", "json_default"]
