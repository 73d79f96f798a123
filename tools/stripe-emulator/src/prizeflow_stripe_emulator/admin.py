"""`/_emulator/...`: lifecycle control, webhook delivery knobs, faults and inspection, as JSON. Test control only:
the emulator binds to 127.0.0.1 by default and these routes have no authentication."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from prizeflow_stripe_emulator.api import error_response
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.webhooks import ReleaseOrder

if TYPE_CHECKING:
    from prizeflow_stripe_emulator.server import Emulator

JsonHandler = Callable[[web.Request, dict[str, Any]], Awaitable[Any] | Any]


class AdminError(Exception):
    pass


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise AdminError(f"{name} must be a string")
    return value


def _str(body: dict[str, Any], name: str) -> str:
    value = _opt_str(body, name)
    if not value:
        raise AdminError(f"{name} is required")
    return value


def _opt_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise AdminError(f"{name} must be an integer")
    return value


def _opt_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise AdminError(f"{name} must be a boolean")
    return value


class Admin:
    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator

    def routes(self) -> list[tuple[str, str, JsonHandler]]:
        return [
            ("GET", "/_emulator/health", self.health),
            ("POST", "/_emulator/reset", self.reset),
            ("POST", "/_emulator/accounts", self.create_account),
            ("POST", "/_emulator/accounts/{id}", self.update_account),
            ("GET", "/_emulator/balance", self.get_balance),
            ("POST", "/_emulator/balance", self.fund),
            ("POST", "/_emulator/checkout/sessions/{id}/complete", self.complete_session),
            ("POST", "/_emulator/checkout/sessions/{id}/async", self.async_result),
            ("POST", "/_emulator/payment_intents/{id}/dispute", self.open_dispute),
            ("POST", "/_emulator/disputes/{id}/close", self.close_dispute),
            ("POST", "/_emulator/payouts/{id}/settle", self.settle_payout),
            ("POST", "/_emulator/discrepancies", self.discrepancy),
            ("GET", "/_emulator/webhook_endpoints", self.list_endpoints),
            ("POST", "/_emulator/webhook_endpoints", self.add_endpoint),
            ("DELETE", "/_emulator/webhook_endpoints/{id}", self.delete_endpoint),
            ("POST", "/_emulator/webhook_endpoints/{id}/roll", self.roll_secret),
            ("POST", "/_emulator/webhook_endpoints/{id}/finish_roll", self.finish_roll),
            ("GET", "/_emulator/webhooks/config", self.get_webhook_config),
            ("POST", "/_emulator/webhooks/config", self.set_webhook_config),
            ("POST", "/_emulator/webhooks/release", self.release),
            ("GET", "/_emulator/webhooks/deliveries", self.deliveries),
            ("POST", "/_emulator/events/{id}/resend", self.resend),
            ("GET", "/_emulator/events", self.events),
            ("GET", "/_emulator/requests", self.requests),
            ("DELETE", "/_emulator/requests", self.clear_requests),
            ("GET", "/_emulator/faults", self.get_faults),
            ("POST", "/_emulator/faults", self.add_fault),
            ("DELETE", "/_emulator/faults", self.clear_faults),
        ]

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._wrap(handler))

    @staticmethod
    def _wrap(handler: JsonHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            body: dict[str, Any] = {}
            if request.can_read_body:
                try:
                    loaded = await request.json()
                except json.JSONDecodeError:
                    return web.json_response(
                        {"error": {"type": "invalid_request_error", "message": "bad JSON"}}, status=400
                    )
                if not isinstance(loaded, dict):
                    return web.json_response(
                        {"error": {"type": "invalid_request_error", "message": "a JSON object is expected"}}, status=400
                    )
                body = loaded
            try:
                result = handler(request, body)
                if isinstance(result, Awaitable):
                    result = await result
                if isinstance(result, web.StreamResponse):
                    return result
            except StripeError as err:
                return error_response(err, {})
            except (AdminError, ValueError) as err:
                return web.json_response({"error": {"type": "invalid_request_error", "message": str(err)}}, status=400)
            return web.json_response(result, dumps=lambda o: json.dumps(o, indent=2))

        return wrapped

    # -- lifecycle -----------------------------------------------------------------------------------------

    def health(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return {"status": "ok"}

    def reset(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.em.reset()
        return {"status": "reset"}

    def create_account(self, _request: web.Request, body: dict[str, Any]) -> Any:
        raw = {k: str(v) for k, v in body.items() if k in ("country", "email", "default_currency", "type")}
        account = self.em.store.create_account(raw, account_id=_opt_str(body, "id"))
        balance = body.get("balance") or {}
        if not isinstance(balance, dict):
            raise AdminError("balance must be an object {currency: minor units}")
        for currency, amount in balance.items():
            self.em.store.fund(currency, int(amount), account["id"])
        return account

    def update_account(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.update_account(
            request.match_info["id"], payouts_enabled=_opt_bool(body, "payouts_enabled"),
            transfers=_opt_str(body, "transfers"),
        )  # fmt: skip

    def get_balance(self, request: web.Request, _body: dict[str, Any]) -> Any:
        account = request.query.get("account") or None
        self.em.store.check_account(account)
        return self.em.store.balance(account)

    def fund(self, _request: web.Request, body: dict[str, Any]) -> Any:
        amount = _opt_int(body, "amount")
        if amount is None:
            raise AdminError("amount is required (minor units)")
        return self.em.store.fund(_str(body, "currency"), amount, _opt_str(body, "account"))

    def complete_session(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.complete_session(request.match_info["id"], _opt_str(body, "outcome") or "paid")

    def async_result(self, request: web.Request, body: dict[str, Any]) -> Any:
        outcome = _str(body, "outcome")
        outcome = outcome if outcome.startswith("async_") else f"async_{outcome}"
        return self.em.store.async_result(request.match_info["id"], outcome)

    def open_dispute(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.open_dispute(
            request.match_info["id"], amount=_opt_int(body, "amount"), reason=_opt_str(body, "reason") or "fraudulent"
        )

    def close_dispute(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.close_dispute(request.match_info["id"], _str(body, "outcome"))

    def settle_payout(self, request: web.Request, body: dict[str, Any]) -> Any:
        return self.em.store.settle_payout(
            request.match_info["id"], _opt_str(body, "outcome") or "paid", _opt_str(body, "failure_code")
        )

    def discrepancy(self, _request: web.Request, body: dict[str, Any]) -> Any:
        """Stripe's books made to differ from what Prizeflow asked for (see the README): 201 with the statement
        line created or changed."""
        line_id = self.em.store.inject_discrepancy(
            _str(body, "kind"),
            reference=_opt_str(body, "reference"),
            amount=_opt_int(body, "amount"),
            asset=_opt_str(body, "asset"),
            destination=_opt_str(body, "destination"),
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
            _str(body, "url"), _opt_str(body, "secret"), enabled_events=events, connect=_opt_bool(body, "connect")
        )
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets), "connect": endpoint.connect}

    def delete_endpoint(self, request: web.Request, _body: dict[str, Any]) -> Any:
        return self.em.store.delete_endpoint(request.match_info["id"])

    def roll_secret(self, request: web.Request, body: dict[str, Any]) -> Any:
        keep_old = _opt_bool(body, "keep_old")
        endpoint = self.em.store.roll_secret(
            request.match_info["id"], _opt_str(body, "secret"), keep_old=True if keep_old is None else keep_old
        )
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets)}

    def finish_roll(self, request: web.Request, _body: dict[str, Any]) -> Any:
        endpoint = self.em.store.finish_roll(request.match_info["id"])
        return {**endpoint.to_object(with_secret=True), "secrets": list(endpoint.secrets)}

    def get_webhook_config(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return self.em.deliverer.config.__dict__

    def set_webhook_config(self, _request: web.Request, body: dict[str, Any]) -> Any:
        self.em.deliverer.config.update(body)
        return self.em.deliverer.config.__dict__

    def release(self, _request: web.Request, body: dict[str, Any]) -> Any:
        order = ReleaseOrder(_opt_str(body, "order") or "fifo")
        released = self.em.deliverer.release(order, seed=_opt_int(body, "seed"))
        return {"released": [d.to_json() for d in released]}

    def deliveries(self, request: web.Request, _body: dict[str, Any]) -> Any:
        return {"deliveries": self.em.deliverer.query(dict(request.query))}

    def resend(self, request: web.Request, body: dict[str, Any]) -> Any:
        event = self.em.store.events.get(request.match_info["id"])
        if event is None:
            raise StripeError.no_such("event", request.match_info["id"])
        created = self.em.deliverer.resend(event, _opt_str(body, "endpoint_id"))
        return {"deliveries": [d.to_json() for d in created]}

    def events(self, request: web.Request, _body: dict[str, Any]) -> Any:
        """Every recorded event (platform and Connect), oldest first; `type` filters."""
        wanted = request.query.get("type")
        return {"events": [e for e in self.em.store.events.values() if wanted is None or e["type"] == wanted]}

    # -- inspection and faults -----------------------------------------------------------------------------

    def requests(self, request: web.Request, _body: dict[str, Any]) -> Any:
        return self.em.requests.query(method=request.query.get("method"), path=request.query.get("path"))

    def clear_requests(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.em.requests.clear()
        return {"status": "cleared"}

    def get_faults(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        return {"rules": [r.to_json() for r in self.em.faults.rules], "triggered": self.em.faults.triggered}

    def add_fault(self, _request: web.Request, body: dict[str, Any]) -> Any:
        rule = self.em.faults.add(
            _str(body, "kind"),
            method=_opt_str(body, "method") or "*",
            path_prefix=_opt_str(body, "path_prefix") or "/v1/",
            count=_opt_int(body, "count") or 1,
            delay_ms=_opt_int(body, "delay_ms") or 30_000,
        )
        return rule.to_json()

    def clear_faults(self, _request: web.Request, _body: dict[str, Any]) -> Any:
        self.em.faults.clear()
        return {"status": "cleared"}


__all__ = ["Admin"]
