"""The `/v1` Stripe API: authentication, `Stripe-Account`, form bodies, idempotency keys, faults, and the route
table onto the store."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from prizeflow_emulator_kit.faults import FaultKind, FaultRule
from prizeflow_emulator_kit.requests import RequestEntry
from prizeflow_emulator_kit.strike import strike
from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.forms import parse_form
from prizeflow_stripe_emulator.idempotency import Stored
from prizeflow_stripe_emulator.models import Ctx, new_id
from prizeflow_stripe_emulator.state import Obj, Store

if TYPE_CHECKING:
    from prizeflow_stripe_emulator.server import Emulator


@dataclass
class StripeRequest(RequestEntry):
    """A /v1 call as the request log shows it (never the API key)."""

    account: str | None = None
    idempotency_key: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


@dataclass(frozen=True)
class Call:
    params: Obj
    ctx: Ctx
    args: tuple[str, ...]


Handler = Callable[[Store, Call], Obj]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    connect: bool  # may act on a connected account (`Stripe-Account`)


def _list_balance_transactions(store: Store, call: Call) -> Obj:
    return store.list_balance_transactions(call.params, call.ctx.account)


def _get_balance_transaction(store: Store, call: Call) -> Obj:
    return store.get_balance_transaction(call.args[0], call.ctx.account)


def _routes() -> list[Route]:
    def r(method: str, path: str, handler: Handler, *, connect: bool = False) -> Route:
        pattern = re.compile("^" + re.sub(r"\{\w+\}", r"([A-Za-z0-9_]+)", path) + "$")
        return Route(method, pattern, handler, connect)

    return [
        r("POST", "/v1/accounts", lambda s, c: s.create_account(c.params)),
        r("GET", "/v1/accounts", lambda s, c: s.list_accounts(c.params)),
        r("GET", "/v1/accounts/{id}", lambda s, c: s.get_account(c.args[0]), connect=True),
        r("GET", "/v1/balance", lambda s, c: s.balance(c.ctx.account), connect=True),
        r("GET", "/v1/balance_transactions", _list_balance_transactions, connect=True),
        r("GET", "/v1/balance_transactions/{id}", _get_balance_transaction, connect=True),
        r("POST", "/v1/transfers", lambda s, c: s.create_transfer(c.params, c.ctx)),
        r("GET", "/v1/transfers", lambda s, c: s.list_transfers(c.params)),
        r("GET", "/v1/transfers/{id}", lambda s, c: s.get_transfer(c.args[0])),
        r("POST", "/v1/transfers/{id}/reversals", lambda s, c: s.create_reversal(c.args[0], c.params, c.ctx)),
        r("GET", "/v1/transfers/{id}/reversals", lambda s, c: s.list_reversals(c.args[0], c.params)),
        r("POST", "/v1/payouts", lambda s, c: s.create_payout(c.params, c.ctx), connect=True),
        r("GET", "/v1/payouts", lambda s, c: s.list_payouts(c.params, c.ctx.account), connect=True),
        r("GET", "/v1/payouts/{id}", lambda s, c: s.get_payout(c.args[0], c.ctx.account), connect=True),
        r("POST", "/v1/payouts/{id}/cancel", lambda s, c: s.cancel_payout(c.args[0], c.ctx), connect=True),
        r("POST", "/v1/checkout/sessions", lambda s, c: s.create_session(c.params, c.ctx)),
        r("GET", "/v1/checkout/sessions", lambda s, c: s.list_sessions(c.params)),
        r("GET", "/v1/checkout/sessions/{id}", lambda s, c: s.get_session(c.args[0])),
        r("POST", "/v1/checkout/sessions/{id}/expire", lambda s, c: s.expire_session(c.args[0], c.ctx)),
        r("GET", "/v1/payment_intents/{id}", lambda s, c: s.get_payment_intent(c.args[0])),
        r("GET", "/v1/charges/{id}", lambda s, c: s.get_charge(c.args[0])),
        r("POST", "/v1/refunds", lambda s, c: s.create_refund(c.params, c.ctx)),
        r("GET", "/v1/refunds/{id}", lambda s, c: s.get_refund(c.args[0])),
        r("GET", "/v1/disputes/{id}", lambda s, c: s.get_dispute(c.args[0])),
        r("GET", "/v1/events", lambda s, c: s.list_events(c.params, c.ctx.account), connect=True),
        r("GET", "/v1/events/{id}", lambda s, c: s.get_event(c.args[0], c.ctx.account), connect=True),
        r("POST", "/v1/webhook_endpoints", lambda s, c: s.create_endpoint(c.params)),
        r("GET", "/v1/webhook_endpoints", lambda s, c: s.list_endpoints(c.params)),
        r("GET", "/v1/webhook_endpoints/{id}", lambda s, c: s.get_endpoint(c.args[0]).to_object()),
        r("DELETE", "/v1/webhook_endpoints/{id}", lambda s, c: s.delete_endpoint(c.args[0])),
    ]


ROUTES = _routes()


def find_route(method: str, path: str) -> tuple[Route, tuple[str, ...]]:
    path_known = False
    for route in ROUTES:
        match = route.pattern.match(path)
        if match is None:
            continue
        path_known = True
        if route.method == method:
            return route, match.groups()
    message = (
        f"Unrecognized request URL ({method}: {path})."
        if not path_known
        else f"The {method} method is not supported on {path}."
    )
    raise StripeError(404 if not path_known else 405, "invalid_request_error", message)


def error_response(err: StripeError, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=err.status, body=json.dumps({"error": err.body()}, indent=2), content_type="application/json",
        headers=headers,
    )  # fmt: skip


def _api_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        import base64
        import binascii

        try:
            return base64.b64decode(value.strip()).decode().partition(":")[0] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None


def _masked(key: str) -> str:
    return key[:8] + "*" * 4 + key[-4:] if len(key) > 12 else "****"


def _authenticate(emulator: Emulator, request: web.Request) -> str:
    api_key = _api_key(request)
    if api_key is None:
        raise StripeError(
            401,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using "
            "Bearer auth.",
        )
    if api_key not in emulator.settings.api_keys:
        raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: {_masked(api_key)}")
    return api_key


def _refusal(fault: FaultRule, headers: dict[str, str]) -> web.Response:
    """A fault that strikes before the request runs: nothing is executed nor stored."""
    if fault.kind is FaultKind.RATE_LIMIT:
        err = StripeError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        )
        return error_response(err, headers)
    err = StripeError(
        500, "api_error", "An unknown error occurred; the request was not processed (emulator fault injection)."
    )
    return error_response(err, headers)


async def _execute(
    emulator: Emulator,
    request: web.Request,
    *,
    api_key: str,
    request_id: str,
    headers: dict[str, str],
    entry: StripeRequest,
) -> tuple[web.Response, bool]:
    """Route, parse, replay or run, store; (response, replayed)."""
    method, path = request.method, request.path
    account = entry.account
    route, args = find_route(method, path)
    if account is not None and not route.connect:
        raise StripeError.invalid(f"The emulator does not support Stripe-Account on {method} {path}.")
    emulator.store.check_account(account)
    if method == "GET":
        pairs = list(request.query.items())
    else:
        form = await request.post()
        pairs = [(k, v) for k, v in form.items() if isinstance(v, str)]
    params = parse_form(pairs)
    entry.params = params
    fingerprint = tuple(sorted(pairs))
    scope = (api_key, account, entry.idempotency_key) if entry.idempotency_key else None
    if scope is not None:
        stored = emulator.idempotency.lookup(scope, method, path, fingerprint, emulator.store.clock())
        if stored is not None:
            replay_headers = {**headers, "Idempotent-Replayed": "true", "Original-Request": stored.request_id}
            return web.Response(
                status=stored.status, body=stored.body, content_type="application/json", headers=replay_headers
            ), True
    ctx = Ctx(account=account, request_id=request_id, idempotency_key=entry.idempotency_key)
    result = route.handler(emulator.store, Call(params, ctx, args))
    body = json.dumps(result, indent=2).encode()
    if scope is not None:
        emulator.idempotency.store(
            scope, Stored(method, path, fingerprint, 200, body, request_id, emulator.store.clock())
        )
    return web.Response(status=200, body=body, content_type="application/json", headers=headers), False


async def handle(emulator: Emulator, request: web.Request) -> web.StreamResponse:
    """Everything under /v1: authenticate, maybe fail on purpose, run, maybe misbehave after success."""
    request_id = new_id("req", 14)
    headers = {
        "Request-Id": request_id,
        "Stripe-Version": request.headers.get("Stripe-Version", emulator.settings.api_version),
    }
    method, path = request.method, request.path
    idem_key = request.headers.get("Idempotency-Key") if method in ("POST", "DELETE") else None
    if idem_key:
        headers["Idempotency-Key"] = idem_key
    entry = emulator.requests.record(
        StripeRequest(method, path, account=request.headers.get("Stripe-Account") or None, idempotency_key=idem_key)
    )
    try:
        api_key = _authenticate(emulator, request)
    except StripeError as err:
        entry.status = err.status
        return error_response(err, headers)

    async def carry_out() -> web.StreamResponse:
        try:
            response, entry.replayed = await _execute(
                emulator, request, api_key=api_key, request_id=request_id, headers=headers, entry=entry
            )
        except StripeError as err:
            return error_response(err, headers)
        return response

    fault = emulator.faults.take(method, path)
    return await strike(fault, request, carry_out, lambda rule: _refusal(rule, headers), entry)


def route_names() -> list[str]:
    return [f"{r.method} {r.pattern.pattern}" for r in ROUTES]


__all__ = ["ROUTES", "Call", "Route", "StripeRequest", "error_response", "find_route", "handle", "route_names"]
