"""The emulator's parts and its aiohttp app: `/v1` (api), `/_emulator` (admin), a tiny hosted checkout page."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import random

from aiohttp import web

from prizeflow_emulator_kit.faults import FaultKind, Faults
from prizeflow_emulator_kit.requests import RequestLog
from prizeflow_emulator_kit.webhooks import DeliveryConfig
from prizeflow_stripe_emulator import api
from prizeflow_stripe_emulator.admin import install_admin
from prizeflow_stripe_emulator.api import StripeRequest
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.idempotency import IdempotencyStore
from prizeflow_stripe_emulator.settings import EmulatorSettings
from prizeflow_stripe_emulator.state import Store
from prizeflow_stripe_emulator.webhooks import StripeDeliverer

log = logging.getLogger(__name__)


FAULT_KINDS = (
    FaultKind.CONNECTION_RESET,
    FaultKind.RATE_LIMIT,
    FaultKind.API_ERROR,  # 500, not processed (so a retry with the same idempotency key executes it)
    FaultKind.TIMEOUT_AFTER_SUCCESS,
    FaultKind.DROP_AFTER_SUCCESS,
)


class Emulator:
    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)  # noqa: S311 - delivery order shuffles, not cryptography
        self.requests: RequestLog[StripeRequest] = RequestLog()
        self.faults = Faults(FAULT_KINDS, path_prefixes=("/v1",))
        self.idempotency = IdempotencyStore()
        self.store = self._new_store()
        self.deliverer = StripeDeliverer(
            self.store,
            DeliveryConfig(
                retry_base_ms=settings.webhook_retry_base_ms,
                max_attempts=settings.webhook_max_attempts,
                timeout_ms=settings.webhook_timeout_ms,
            ),
            rng=self.rng,
        )
        self._settler: asyncio.Task[None] | None = None
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
        self.faults.reset()
        self.idempotency.clear()
        self._seed()

    def settle_due_payouts(self) -> int:
        """With STRIPE_EMULATOR_PAYOUT_AUTO_SETTLE_MS: the bank pays every payout pending for that long (in transit,
        then paid, with their events), as a real bank does without anyone asking. Returns how many."""
        delay_s = self.settings.payout_auto_settle_ms / 1000
        due = self.store.pending_payouts_created_before(self.store.now() - delay_s)
        for pid in due:
            self.store.settle_payout(pid, "in_transit")
            self.store.settle_payout(pid, "paid")
        return len(due)

    async def _auto_settle(self) -> None:
        interval = max(0.05, min(1.0, self.settings.payout_auto_settle_ms / 4000))
        while True:
            await asyncio.sleep(interval)  # a clock, not synchronisation: the bank's own pace
            try:
                self.settle_due_payouts()
            except Exception:
                log.exception("auto-settling payouts failed")

    async def start(self, _app: web.Application | None = None) -> None:
        await self.deliverer.start()
        if self.settings.payout_auto_settle_ms > 0:
            self._settler = asyncio.create_task(self._auto_settle(), name="payout-auto-settle")

    async def close(self, _app: web.Application | None = None) -> None:
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
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
    install_admin(emulator, app)
    app.router.add_get("/c/pay/{id}", checkout_page)
    app.router.add_post("/c/pay/{id}", checkout_page)
    app.on_startup.append(emulator.start)
    app.on_cleanup.append(emulator.close)
    return app


__all__ = ["EMULATOR_KEY", "FAULT_KINDS", "Emulator", "create_app"]
