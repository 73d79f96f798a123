"""Stripe Checkout as a `CheckoutProvider`, through the official `stripe` library (async, httpx).

A session is created with `Idempotency-Key: <top_up_id>` and names the top-up everywhere Stripe echoes it back
(`client_reference_id`, the session's and the payment intent's `metadata`: top_up_id, player_id, correlation_id),
so its webhooks and its refunds/disputes lead back to the top-up. The request's parameters depend only on the
top-up and the settings (no clock): a retry after a lost answer is the same request, and Stripe answers it with
the same session (a different one under the same key would be an `IdempotencyError`). Stripe's own session
lifetime applies (24 h). The API key is never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from stripe.params.checkout import SessionCreateParams

from prizeflow_rewards.application.ports import (
    CheckoutRefusedError,
    CheckoutRequest,
    CheckoutSession,
    CheckoutUnavailableError,
)

log = logging.getLogger(__name__)

# Stripe's own failures and ours (a wrong key) are "no answer" for the player: retry later, nothing recorded.
_UNAVAILABLE = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    stripe.AuthenticationError,
    stripe.PermissionError,
)


class _HTTPXClient(stripe.HTTPXClient):
    """Stripe's httpx client, sending its form-encoded body as `content`: httpx deprecates `data=<str>`, which
    the library passes (stripe 16.1)."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return args, kwargs


class StripeCheckout:
    name = "stripe"
    currency_scheme = "stripe"

    def __init__(
        self,
        *,
        api_key: str,
        success_url: str,
        cancel_url: str,
        api_base: str | None = None,
        timeout_s: float = 10.0,
        max_network_retries: int = 2,
    ) -> None:
        addresses: Any = {"api": api_base} if api_base else None
        self._http = _HTTPXClient(timeout=timeout_s)
        self._client = stripe.StripeClient(
            api_key, base_addresses=addresses, http_client=self._http, max_network_retries=max_network_retries
        )
        self._success_url = success_url
        self._cancel_url = cancel_url

    async def create_session(self, request: CheckoutRequest) -> CheckoutSession:
        metadata = {
            "top_up_id": request.top_up_id,
            "player_id": request.player_id,
            "correlation_id": request.correlation_id,
        }
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.amount,
                        "product_data": {"name": request.description},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": self._success_url,
            "cancel_url": self._cancel_url,
            "client_reference_id": request.top_up_id,
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
        }
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": request.top_up_id}
            )
        except stripe.StripeError as err:
            raise self._failure(err, f"create session for {request.top_up_id}") from err
        return _session(session)

    async def retrieve_session(self, session_ref: str) -> CheckoutSession:
        try:
            session = await self._client.v1.checkout.sessions.retrieve_async(session_ref)
        except stripe.StripeError as err:
            raise self._failure(err, f"retrieve session {session_ref}") from err
        return _session(session)

    async def aclose(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in stripe 16.1

    def _failure(self, err: stripe.StripeError, what: str) -> CheckoutUnavailableError | CheckoutRefusedError:
        status = err.http_status
        if isinstance(err, _UNAVAILABLE) or status is None or status >= 500:
            level = (
                logging.ERROR
                if isinstance(err, stripe.AuthenticationError | stripe.PermissionError)
                else logging.WARNING
            )
            log.log(level, "stripe: %s: %s (http %s, request %s)", what, type(err).__name__, status, err.request_id)
            return CheckoutUnavailableError(self.name, f"{type(err).__name__} (http {status})")
        code = err.code or type(err).__name__
        log.warning("stripe: %s refused: %s (http %s, request %s)", what, code, status, err.request_id)
        return CheckoutRefusedError(self.name, code, f"http {status}")


def _session(s: Any) -> CheckoutSession:
    """A `stripe.checkout.Session` (a StripeObject: attribute access) as the port's value."""
    payment = s.payment_intent
    metadata = s.metadata.to_dict() if s.metadata is not None else {}
    return CheckoutSession(
        session_ref=s.id,
        url=s.url,
        status=s.status or "open",
        payment_status=s.payment_status or "unpaid",
        amount_total=s.amount_total,
        currency=s.currency,
        payment_ref=payment if isinstance(payment, str) or payment is None else payment.id,
        expires_at=datetime.fromtimestamp(int(s.expires_at), UTC),
        top_up_id=metadata.get("top_up_id") or s.client_reference_id,
    )


__all__ = ["StripeCheckout"]
