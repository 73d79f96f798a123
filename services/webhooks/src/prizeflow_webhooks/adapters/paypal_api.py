"""`PayPalItemFetcher`: the `PayoutItemFetcher` port over PayPal's REST API (httpx).

`POST /v1/oauth2/token` (`grant_type=client_credentials`, basic auth with the REST app's client id in
`confirm.api_key_id` and its secret in `confirm.api_key`) for a token kept until shortly before it expires, then
`GET /v1/payments/payouts-item/{id}` with it as a Bearer. A token PayPal no longer takes (401) is dropped and the
item asked once more with a new one. The item's receiver and note are removed as soon as the answer is parsed. No
retries otherwise: a PayPal that cannot answer (network, 5xx, 429, any refusal) is a 503 to it, and it delivers again
later; the error carries no response text.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from prizeflow_contracts.rails.paypal import redact_item
from prizeflow_contracts.rails.paypal_wire import ITEM_ID_RE
from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_webhooks.adapters.config import ConfirmConfig

_OK, _UNAUTHORIZED, _NOT_FOUND = 200, 401, 404
TOKEN_MARGIN_S: Final = 60.0  # a token is renewed this long before PayPal says it expires
MAX_TOKEN_S: Final = 9 * 3600.0  # PayPal's tokens live about 9 hours; a longer claim is not believed


class PayPalItemFetcher:
    def __init__(
        self,
        config: ConfirmConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.api_key_id:
            raise ValueError("a PayPal confirmation needs confirm.api_key_id (the client id) and api_key (its secret)")
        self._config = config
        self._transport = transport
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._token: tuple[str, float] | None = None  # (access token, when to renew it)
        self._lock = asyncio.Lock()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._config.api_base + "/v1/",
                headers={"Accept": "application/json"},
                timeout=self._config.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._token = None

    async def _access_token(self, *, stale: str | None = None) -> str:
        """A token still good, or a new one (one request at a time; `stale`: the one PayPal just refused)."""
        async with self._lock:
            if self._token is not None and self._token[0] != stale and self._clock() < self._token[1]:
                return self._token[0]
            try:
                resp = await self._client().post(
                    "oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(self._config.api_key_id or "", self._config.api_key),
                )
            except httpx.HTTPError as err:
                raise ProviderUnavailableError(f"PayPal unreachable ({type(err).__name__})") from None
            if resp.status_code != _OK:
                raise ProviderUnavailableError(f"PayPal refused the token (HTTP {resp.status_code})")
            doc = _json(resp)
            token, expires = doc.get("access_token"), doc.get("expires_in")
            if not isinstance(token, str) or not token or isinstance(expires, bool) or not isinstance(expires, int):
                raise ProviderUnavailableError("PayPal answered no token")
            self._token = (token, self._clock() + min(float(expires), MAX_TOKEN_S) - TOKEN_MARGIN_S)
            return token

    async def fetch_item(self, payout_item_id: str) -> Mapping[str, Any] | None:
        if not ITEM_ID_RE.fullmatch(payout_item_id):
            return None  # never a path of our making
        token = await self._access_token()
        resp = await self._get(payout_item_id, token)
        if resp.status_code == _UNAUTHORIZED:
            resp = await self._get(payout_item_id, await self._access_token(stale=token))
        if resp.status_code == _NOT_FOUND:
            return None
        if resp.status_code != _OK:
            # A refusal (a bad credential included) is an outage of ours, not the event's fault: ask again later.
            raise ProviderUnavailableError(f"PayPal refused the lookup (HTTP {resp.status_code})")
        doc = _json(resp)
        if not isinstance(doc.get("payout_item_id"), str):
            raise ProviderUnavailableError("PayPal answered no payout item")
        return redact_item(doc)

    async def _get(self, payout_item_id: str, token: str) -> httpx.Response:
        try:
            return await self._client().get(
                f"payments/payouts-item/{payout_item_id}", headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as err:
            raise ProviderUnavailableError(f"PayPal unreachable ({type(err).__name__})") from None


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        doc = json.loads(resp.content)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


# The scheme whose provider this client asks back (`confirm_apis` finds it by this name).
CONFIRMS: Final = "paypal"
CLIENT: Final = PayPalItemFetcher

__all__ = ["CLIENT", "CONFIRMS", "PayPalItemFetcher"]
