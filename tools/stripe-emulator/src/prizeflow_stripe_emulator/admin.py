"""`/_emulator/...` (the kit's admin routes): lifecycle control, webhook delivery knobs, faults and inspection, as
JSON. Test control only: the emulator binds to 127.0.0.1 by default and these routes have no authentication."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from prizeflow_emulator_kit.admin import Admin, AdminError, opt_bool, opt_int, opt_str, req_int, req_str
from prizeflow_emulator_kit.webhooks import ReleaseOrder
from prizeflow_stripe_emulator.api import error_response
from prizeflow_stripe_emulator.errors import StripeError

if TYPE_CHECKING:
    from prizeflow_stripe_emulator.server import Emulator


def install_admin(emulator: Emulator, app: web.Application) -> None:
    admin = Admin(errors=_stripe_error, dumps=lambda o: json.dumps(o, indent=2))
    routes = StripeAdmin(emulator)
    for method, path, handler in [
        ("POST", "/reset", routes.reset),
        ("POST", "/accounts", routes.create_account),
        ("POST", "/accounts/{id}", routes.update_account),
        ("GET", "/balance", routes.get_balance),
        ("POST", "/balance", routes.fund),
        ("POST", "/checkout/sessions/{id}/complete", routes.complete_session),
        ("POST", "/checkout/sessions/{id}/async", routes.async_result),
        ("POST", "/payment_intents/{id}/dispute", routes.open_dispute),
        ("POST", "/disputes/{id}/close", routes.close_dispute),
        ("POST", "/payouts/{id}/settle", routes.settle_payout),
        ("POST", "/discrepancies", routes.discrepancy),
        ("GET", "/webhook_endpoints", routes.list_endpoints),
        ("POST", "/webhook_endpoints", routes.add_endpoint),
        ("DELETE", "/webhook_endpoints/{id}", routes.delete_endpoint),
        ("POST", "/webhook_endpoints/{id}/roll", routes.roll_secret),
        ("POST", "/webhook_endpoints/{id}/finish_roll", routes.finish_roll),
        ("GET", "/webhooks/config", routes.get_webhook_config),
        ("POST", "/webhooks/config", routes.set_webhook_config),
        ("POST", "/webhooks/release", routes.release),
        ("GET", "/webhooks/deliveries", routes.deliveries),
        ("POST", "/events/{id}/resend", routes.resend),
        ("GET", "/events", routes.events),
    ]:
        admin.route(method, path, handler)
    admin.faults(emulator.faults)
    admin.requests(emulator.requests)
    admin.install(app)


def _stripe_error(err: Exception) -> web.StreamResponse | None:
    return error_response(err, {}) if isinstance(err, StripeError) else None


class StripeAdmin:
    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator

    # -- lifecycle -----------------------------------------------------------------------------------------

    def reset(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.em.reset()
        return {"status": "reset"}

    def create_account(self, _request: web.Request, body: dict[str, Any]) -> Any:
        raw = {k: str(v) for k, v in body.items() if k in ("country", "email", "default_currency", "type")}
        account = self.em.store.create_account(raw, account_id=opt_str(body, "id"))
        balance = body.get("balance") or {}
        if not isinstance(balance, dict):
            raise AdminError("balance must be an object {currency: minor units}")
        for currency, amount in balance.items():
            self.em.store.fund(currency, int(amount), account["id"])
        return account

    def update_account(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.update_account(
            request.match_info["id"], payouts_enabled=opt_bool(body, "payouts_enabled"),
            transfers=opt_str(body, "transfers"),
        )  # fmt: skip

    def get_balance(self, request: web.Request, _body: dict[str, Any]) -> Any:
        account = request.query.get("account") or None
        self.em.store.check_account(account)
        return self.em.store.balance(account)

    def fund(self, _request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.fund(req_str(body, "currency"), req_int(body, "amount"), opt_str(body, "account"))

    def complete_session(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.complete_session(request.match_info["id"], opt_str(body, "outcome") or "paid")

    def async_result(self, request: web.Request, body: dict[str, Any]) -> Any:
        outcome = req_str(body, "outcome")
        outcome = outcome if outcome.startswith("async_") else f"async_{outcome}"
        return self.em.store.async_result(request.match_info["id"], outcome)

    def open_dispute(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.open_dispute(
            request.match_info["id"], amount=opt_int(body, "amount"), reason=opt_str(body, "reason") or "fraudulent"
        )

    def close_dispute(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.close_dispute(request.match_info["id"], req_str(body, "outcome"))

    def settle_payout(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.settle_payout(
            request.match_info["id"], opt_str(body, "outcome") or "paid", opt_str(body, "failure_code")
        )

    def discrepancy(self, _request: web.Request, body: dict[str, Any]) -> Any:
        """Stripe's books made to differ from what Prizeflow asked for (see the README): 201 with the statement
        line created or changed."""
        line_id = self.em.store.inject_discrepancy(
            req_str(body, "kind"),
            reference=opt_str(body, "reference"),
            amount=opt_int(body, "amount"),
            asset=opt_str(body, "asset"),
            destination=opt_str(body, "destination"),
        )
        return web.json_response({"line_id": line_id}, status=201)

    # -- webhooks ------------------------------------------------------------------------------------------

    def list_endpoints(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return [
            {**e.to_object(), "secrets": list(e.secrets), "connect": e.connect}
            for e in self.em.store.endpoints.values()
        ]

    def add_endpoint(self, _request: web.Request, body: dict[str, Any]) -> Any:
        events = body.get("enabled_events")
        if events is not None and (not isinstance(events, list) or not all(isinstance(e, str) for e in events)):
            raise AdminError("enabled_events must be a list of event types")
        endpoint = self.em.store.add_endpoint(
            req_str(body, "url"), opt_str(body, "secret"), enabled_events=events, connect=opt_bool(body, "connect")
        )
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets), "connect": endpoint.connect}

    def delete_endpoint(self, request: web.Request, _body: dict[str, Any]) -> Any:
        return self.em.store.delete_endpoint(request.match_info["id"])

    def roll_secret(self, request: web.Request, body: dict[str, Any]) -> Any:
        keep_old = opt_bool(body, "keep_old")
        endpoint = self.em.store.roll_secret(
            request.match_info["id"], opt_str(body, "secret"), keep_old=True if keep_old is None else keep_old
        )
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets)}

    def finish_roll(self, request: web.Request, _body: dict[str, Any]) -> Any:
        endpoint = self.em.store.finish_roll(request.match_info["id"])
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets)}

    def get_webhook_config(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return self.em.deliverer.config.to_json()

    def set_webhook_config(self, _request: web.Request, body: dict[str, Any]) -> Any:
        self.em.deliverer.config.update(body)
        return self.em.deliverer.config.to_json()

    def release(self, _request: web.Request, body: dict[str, Any]) -> Any:
        order = ReleaseOrder(opt_str(body, "order") or "fifo")
        released = self.em.deliverer.release(order, seed=opt_int(body, "seed"))
        return {"released": [d.to_json() for d in released]}

    def deliveries(self, request: web.Request, _body: dict[str, Any]) -> Any:
        return {"deliveries": self.em.deliverer.query(dict(request.query))}

    def resend(self, request: web.Request, body: dict[str, Any]) -> Any:
        event = self.em.store.events.get(request.match_info["id"])
        if event is None:
            raise StripeError.no_such("event", request.match_info["id"])
        created = self.em.deliverer.resend(event, opt_str(body, "endpoint_id"))
        return {"deliveries": [d.to_json() for d in created]}

    def events(self, request: web.Request, _body: dict[str, Any]) -> Any:
        """Every recorded event (platform and Connect), oldest first; `type` filters."""
        wanted = request.query.get("type")
        return {"events": [e for e in self.em.store.events.values() if wanted is None or e["type"] == wanted]}


__all__ = ["install_admin"]
