"""`StripeEventConfirmer`: the `EventConfirmer` port over Stripe's API, with the official `stripe` library.

`GET /v1/events/{id}` and `GET /v1/payment_intents/{id}` with the platform's secret key, and the
`Stripe-Account` header when the event came from a connected account. No retries here: a provider that cannot
answer is a 503 to Stripe, which delivers again later (with backoff, for days).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import stripe

from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_webhooks.adapters.config import ConfirmConfig

# Stripe's answers that mean "ask again later"; anything else but a 404 is a refusal worth the same 503, since
# the event cannot be believed without the answer (a bad API key is an outage of ours, not the event's fault).
_NOT_FOUND = 404


class StripeEventConfirmer:
    def __init__(self, config: ConfirmConfig, *, http_client: stripe.HTTPClient | None = None) -> None:
        self._http = http_client or stripe.HTTPXClient(timeout=config.timeout_s)
        self.client = stripe.StripeClient(
            config.api_key,
            base_addresses={"api": config.api_base},
            http_client=self._http,
            max_network_retries=0,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call] # the library leaves it untyped

    async def fetch_event(self, event_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        try:
            event = await self.client.v1.events.retrieve_async(event_id, options=_options(account))
        except stripe.InvalidRequestError as err:
            if err.http_status == _NOT_FOUND:
                return None
            raise ProviderUnavailableError(f"stripe refused the event lookup (HTTP {err.http_status})") from None
        except stripe.StripeError as err:
            raise ProviderUnavailableError(f"stripe unreachable ({type(err).__name__})") from None
        return _plain(event)

    async def fetch_payment_intent(self, payment_intent_id: str, *, account: str | None) -> Mapping[str, Any] | None:
        try:
            intent = await self.client.v1.payment_intents.retrieve_async(payment_intent_id, options=_options(account))
        except stripe.InvalidRequestError as err:
            if err.http_status == _NOT_FOUND:
                return None
            raise ProviderUnavailableError(f"stripe refused the payment lookup (HTTP {err.http_status})") from None
        except stripe.StripeError as err:
            raise ProviderUnavailableError(f"stripe unreachable ({type(err).__name__})") from None
        return _plain(intent)


def _options(account: str | None) -> stripe.RequestOptions:
    return {"stripe_account": account} if account else {}


def _plain(obj: stripe.StripeObject) -> dict[str, Any]:
    """The object as plain JSON data (what the normalizer reads), not the library's attribute objects."""
    plain: dict[str, Any] = obj.to_dict()
    return plain


# The scheme whose provider this client asks back (`confirm_apis` finds it by this name).
CONFIRMS: Final = "stripe_signature"
CLIENT: Final = StripeEventConfirmer

__all__ = ["CLIENT", "CONFIRMS", "StripeEventConfirmer"]
