"""The emulator's parts and its aiohttp app: `/v1` (api), `/_emulator` (admin), a tiny hosted checkout page."""

from __future__ import annotations

import html
import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from prizeflow_stripe_emulator import api
from prizeflow_stripe_emulator.admin import Admin
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.faults import Faults
from prizeflow_stripe_emulator.idempotency import IdempotencyStore
from prizeflow_stripe_emulator.settings import EmulatorSettings
from prizeflow_stripe_emulator.state import Store
from prizeflow_stripe_emulator.webhooks import Deliverer, DeliveryConfig


@dataclass
class RequestEntry:
    method: str
    path: str
    account: str | None
    idempotency_key: str | None
    at: float
    params: dict[str, Any] = field(default_factory=dict)
    status: int | None = None
    replayed: bool = False
    fault: str | None = None

    def finish(self, response: web.StreamResponse, *, replayed: bool = False) -> web.StreamResponse:
        """Record how the call was answered; the response itself."""
        self.status = response.status
        self.replayed = replayed
        return response


class RequestLog:
    """Every /v1 call received (never the API key), for tests asserting "called once"."""

    def __init__(self, limit: int = 100_000) -> None:
        self.entries: deque[RequestEntry] = deque(maxlen=limit)

    def record(self, method: str, path: str, *, account: str | None, idempotency_key: str | None) -> RequestEntry:
        entry = RequestEntry(method, path, account, idempotency_key, time.time())
        self.entries.append(entry)
        return entry

    def query(self, *, method: str | None, path: str | None) -> dict[str, Any]:
        chosen = [
            e
            for e in self.entries
            if (method is None or e.method == method.upper()) and (path is None or e.path == path)
        ]
        counts = Counter(f"{e.method} {e.path}" for e in self.entries)
        return {"requests": [asdict(e) for e in chosen], "counts": dict(counts)}

    def clear(self) -> None:
        self.entries.clear()


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - delivery order shuffles, not cryptography
        self.requests = RequestLog()
        self.faults = Faults()
        self.idempotency = IdempotencyStore()
        self.store = self._new_store()
        self.deliverer = Deliverer(
            self.store,
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
            rng=self.rng,
        )
        self._seed()

    def _new_store(self) -> Store:
        return Store(api_version=self.settings.api_version, public_url=self.settings.base_url)

    def _seed(self) -> None:
        """What the settings configure: platform balance, connected accounts, webhook endpoints."""
        for currency, amount in self.settings.platform_balance.items():
            self.store.fund(currency, amount)
        for account in self.settings.accounts:
            self.store.create_account({}, account_id=account)
        for endpoint in self.settings.webhook_endpoints:
            self.store.add_endpoint(endpoint.url, endpoint.secret)

    def reset(self) -> None:
        """Forget every object, event, delivery, request, fault and idempotency key; back to the settings."""
        self.deliverer.reset()
        listeners = self.store.listeners
        self.store = self._new_store()
        self.store.listeners.extend(listeners)
        self.deliverer.store = self.store
        self.requests.clear()
        self.faults.clear()
        self.idempotency.clear()
        self._seed()

    async def start(self, _app: web.Application | None = None) -> None:
        await self.deliverer.start()

    async def close(self, _app: web.Application | None = None) -> None:
        await self.deliverer.close()


EMULATOR_KEY = web.AppKey("emulator", Emulator)

_PAGE = """<!doctype html><html><head><title>Stripe emulator checkout</title></head><body>
<h1>Pay {amount} {currency}</h1><p>Checkout session <code>{sid}</code> ({status})</p>
<form method="post"><button name="outcome" value="paid">Pay</button>
<button name="outcome" value="async">Pay by bank debit (async)</button>
<button name="outcome" value="expire">Cancel</button></form></body></html>"""


def create_app(emulator: Emulator) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[EMULATOR_KEY] = emulator

    async def v1(request: web.Request) -> web.StreamResponse:
        return await api.handle(emulator, request)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def checkout_page(request: web.Request) -> web.Response:
        """A stand-in for Stripe's hosted page (`make run`): pay, pay asynchronously, or cancel."""
        sid = request.match_info["id"]
        try:
            session = emulator.store.get_session(sid)
            if request.method == "POST":
                form = await request.post()
                outcome = str(form.get("outcome", "paid"))
                emulator.store.complete_session(sid, outcome)
                target = session["cancel_url"] if outcome == "expire" else session["success_url"]
                if target:
                    raise web.HTTPSeeOther(target.replace("{CHECKOUT_SESSION_ID}", sid))
        except StripeError as err:
            return web.Response(status=err.status, text=err.message)
        return web.Response(
            content_type="text/html",
            text=_PAGE.format(
                amount=session["amount_total"], currency=html.escape(session["currency"]),
                sid=html.escape(sid), status=html.escape(session["status"]),
            ),
        )  # fmt: skip

    app.router.add_route("*", "/v1/{tail:.*}", v1)
    Admin(emulator).install(app)
    app.router.add_get("/health/live", health)
    app.router.add_get("/health/ready", health)
    app.router.add_get("/c/pay/{id}", checkout_page)
    app.router.add_post("/c/pay/{id}", checkout_page)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.close)
    return app


__all__ = ["EMULATOR_KEY", "Emulator", "RequestEntry", "RequestLog", "create_app"]
