"""The emulator's aiohttp app: `/api/v2` (the API subset, Bearer-key auth, faults) and `/_emulator` (admin)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError
from prizeflow_emulator_kit.faults import FaultKind, FaultRule, Faults
from prizeflow_emulator_kit.requests import RequestEntry, RequestLog
from prizeflow_emulator_kit.strike import strike
from prizeflow_emulator_kit.webhooks import DeliveryConfig, ReleaseOrder
from prizeflow_giftcard_emulator.settings import EmulatorSettings
from prizeflow_giftcard_emulator.state import ApiError, Outcome, Store
from prizeflow_giftcard_emulator.webhooks import GiftCardDeliverer, WebhookEndpoint

log = logging.getLogger(__name__)
API = "/api/v2"
FAULT_KINDS = (
    FaultKind.SERVER_ERROR,  # 500, not processed
    FaultKind.RATE_LIMIT,  # 429, not processed
    FaultKind.CONNECTION_RESET,  # cut before processing
    FaultKind.TIMEOUT_AFTER_SUCCESS,  # processed and stored, the answer held back `delay_ms`
)


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Amounts have at most 2 decimals: the shortest float repr is that decimal exactly.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def dumps(doc: Any) -> str:
    return json.dumps(doc, default=json_default, separators=(",", ":"))


def dump(doc: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=dumps(doc), content_type="application/json")


@dataclass
class GiftCardRequest(RequestEntry):
    external_id: str | None = None  # of an order (also of a call a fault answered)


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.faults = Faults(FAULT_KINDS, path_prefixes=(API,))
        self.requests: RequestLog[GiftCardRequest] = RequestLog()
        self.deliverer = GiftCardDeliverer(
            WebhookEndpoint(url=settings.webhook_url, private_key=settings.webhook_private_key),
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
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
            listener=self.deliverer.on_event,
        )

    def reset(self) -> None:
        self.store = self._new_store()
        self.faults.reset()
        self.requests.clear()
        self.deliverer.reset()
        self.deliverer.config.duplicates, self.deliverer.config.hold = 1, False

    async def start(self) -> None:
        await self.deliverer.start()
        self._ticker = asyncio.create_task(self._tick(), name="giftcard-delivery")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.deliverer.close()

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
    entry = em.requests.record(GiftCardRequest(request.method, request.path))
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in em.settings.api_keys:
        entry.status = 401
        return dump(ApiError(401, "Authentication failed").to_json(), 401)
    if request.method == "POST" and request.path == f"{API}/orders":
        entry.external_id = _external_id(await request.read())

    async def carry_out() -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except ApiError as err:
            return dump(err.to_json(), err.status)
        return response

    return await strike(em.faults.take(request.method, request.path), request, carry_out, _refusal, entry)


def _refusal(fault: FaultRule) -> web.Response:
    if fault.kind is FaultKind.RATE_LIMIT:
        return dump(ApiError(429, "Too many requests").to_json(), 429)
    return dump(ApiError(500, "Internal server error").to_json(), 500)


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
def install_admin(em: Emulator, app: web.Application) -> None:
    admin = Admin(errors=_api_error, dumps=dumps)

    def reset(_request: web.Request, _body: dict[str, Any]) -> Any:
        em.reset()
        return {"status": "reset"}

    def steer(_request: web.Request, body: dict[str, Any]) -> Any:
        em.store.recipients[str(body["email"]).lower()] = Outcome(body.get("outcome", "deliver"))
        return {"ok": True}

    def approve(request: web.Request, _body: dict[str, Any]) -> Any:
        return {"order": em.store.approve(request.match_info["id"]).to_json()}

    def reject(request: web.Request, _body: dict[str, Any]) -> Any:
        return {"order": em.store.reject(request.match_info["id"]).to_json()}

    def fail_delivery(request: web.Request, _body: dict[str, Any]) -> Any:
        return {"reward": em.store.fail_delivery(request.match_info["id"]).to_json()}

    def cancel_delivered(request: web.Request, _body: dict[str, Any]) -> Any:
        return {"reward": em.store.cancel_delivered(request.match_info["id"]).to_json()}

    def bounce_after_delivery(request: web.Request, _body: dict[str, Any]) -> Any:
        return {"reward": em.store.bounce_after_delivery(request.match_info["id"]).to_json()}

    def events(request: web.Request, _body: dict[str, Any]) -> Any:
        kind = request.query.get("event")
        chosen = [e for e in em.store.events if kind is None or e.event == kind]
        return {"events": [{**e.to_json(), "order_id": e.order_id} for e in chosen]}

    def redeliver(request: web.Request, _body: dict[str, Any]) -> Any:
        """One event delivered again now (a duplicate, or a late one: out of order)."""
        wanted = request.match_info["uuid"]
        found = next((e for e in em.store.events if e.uuid == wanted), None)
        if found is None:
            raise AdminError("no such event", status=404)
        em.deliverer.redeliver(found)
        return {"ok": True}

    def webhook_config(_request: web.Request, body: dict[str, Any]) -> Any:
        """`{"url", "private_key", "duplicates", "hold"}`: any subset."""
        em.deliverer.config.update({k: v for k, v in body.items() if k in ("duplicates", "hold")})
        if "url" in body:
            em.deliverer.endpoint.url = body["url"] or None
        if "private_key" in body:
            em.deliverer.endpoint.private_key = body["private_key"] or None
        return em.deliverer.to_json()

    def webhook_release(_request: web.Request, body: dict[str, Any]) -> Any:
        """The held events, in recorded or reverse order; the number of events released."""
        order = ReleaseOrder.REVERSE if body.get("reverse") else ReleaseOrder.FIFO
        return {"released": len({d.event_id for d in em.deliverer.release(order)})}

    def orders(request: web.Request, _body: dict[str, Any]) -> Any:
        """Every order, as the API shows it (answers during an API outage; tests count what was really paid)."""
        external_id = request.query.get("external_id")
        chosen = [o for o in em.store.orders.values() if external_id is None or o.external_id == external_id]
        return {"orders": [o.to_json() for o in chosen]}

    def discrepancy(_request: web.Request, body: dict[str, Any]) -> Any:
        """The provider's books made to differ from what Prizeflow asked for (see the README): 201 with the
        statement line created or changed."""
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
            return dump(ApiError(400, "amount must be an integer (minor units)").to_json(), 400)
        fields = {name: body.get(name) for name in ("kind", "reference", "asset", "destination")}
        if not all(v is None or isinstance(v, str) for v in fields.values()) or not fields["kind"]:
            return dump(ApiError(400, "kind is required; reference, asset and destination are strings").to_json(), 400)
        line_id = em.store.inject_discrepancy(
            str(fields["kind"]),
            reference=fields["reference"],
            amount=amount,
            asset=fields["asset"],
            destination=fields["destination"],
        )
        return dump({"line_id": line_id}, 201)

    def stats(_request: web.Request, _body: dict[str, Any]) -> Any:
        return {"orders_created": em.store.created, "balances": em.store.balances}

    for method, path, handler in [
        ("POST", "/reset", reset),
        ("POST", "/recipients", steer),
        ("POST", "/orders/{id}/approve", approve),
        ("POST", "/orders/{id}/reject", reject),
        ("POST", "/rewards/{id}/fail", fail_delivery),
        ("POST", "/rewards/{id}/cancel_delivered", cancel_delivered),
        ("POST", "/rewards/{id}/bounce", bounce_after_delivery),
        ("GET", "/events", events),
        ("POST", "/events/{uuid}/deliver", redeliver),
        ("POST", "/webhooks", webhook_config),
        ("POST", "/webhooks/release", webhook_release),
        ("GET", "/webhooks", lambda _r, _b: em.deliverer.to_json()),
        ("GET", "/orders", orders),
        ("GET", "/stats", stats),
        ("POST", "/discrepancies", discrepancy),
    ]:
        admin.route(method, path, handler)
    admin.faults(em.faults)
    admin.requests(em.requests)
    admin.install(app)


def _api_error(err: Exception) -> web.StreamResponse | None:
    return dump(err.to_json(), err.status) if isinstance(err, ApiError) else None


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
    install_admin(emulator, app)

    async def on_startup(_: web.Application) -> None:
        await emulator.start()

    async def on_cleanup(_: web.Application) -> None:
        await emulator.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


__all__ = ["FAULT_KINDS", "Emulator", "create_app", "json_default"]
