"""`GiftCardOrderFetcher`: the `OrderFetcher` port over the gift-card provider's REST API v2 (httpx).

`GET /rewards/{id}` (for its `order_id`) then `GET /orders/{id}`, with the API key as a Bearer token. Every
reward's `delivery.link` (the card itself) is removed as soon as an answer is parsed. No retries here: a
provider that cannot answer is a 503 to it, and it delivers again later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

import httpx

from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_webhooks.adapters.config import ConfirmConfig

_NOT_FOUND = 404
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what goes into a URL path
API_PATH = "/api/v2"  # appended to the confirm api_base (the host)


def _redact(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _redact(v) for k, v in doc.items() if k != "link"}
    if isinstance(doc, list):
        return [_redact(v) for v in doc]
    return doc


class GiftCardOrderFetcher:
    def __init__(self, config: ConfirmConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._config = config
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._config.api_base + API_PATH + "/",
                headers={"Authorization": f"Bearer {self._config.api_key}", "Accept": "application/json"},
                timeout=self._config.timeout_s,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def fetch_order(self, resource_type: str, resource_id: str) -> Mapping[str, Any] | None:
        if resource_type == "rewards":
            reward = await self._get(f"rewards/{resource_id}", "reward")
            if reward is None:
                return None
            order_id = reward.get("order_id")
            if not isinstance(order_id, str) or not _ID_RE.fullmatch(order_id):
                return None
            resource_id = order_id
        return await self._get(f"orders/{resource_id}", "order")

    async def _get(self, path: str, name: str) -> dict[str, Any] | None:
        try:
            resp = await self._client().get(path)
        except httpx.HTTPError as err:
            raise ProviderUnavailableError(f"gift-card API unreachable ({type(err).__name__})") from None
        if resp.status_code == _NOT_FOUND:
            return None
        if resp.status_code != 200:
            # A refusal (a bad key included) is an outage of ours, not the event's fault: ask again later.
            raise ProviderUnavailableError(f"gift-card API refused the lookup (HTTP {resp.status_code})")
        try:
            doc = _redact(json.loads(resp.content, parse_float=Decimal))
        except ValueError:
            raise ProviderUnavailableError("gift-card API answered something that is not JSON") from None
        obj = doc.get(name) if isinstance(doc, dict) else None
        if not isinstance(obj, dict):
            raise ProviderUnavailableError(f"gift-card API answered no {name}")
        return obj


# The scheme whose provider this client asks back (`confirm_apis` finds it by this name).
CONFIRMS: Final = "giftcard_signature"
CLIENT: Final = GiftCardOrderFetcher

__all__ = ["CLIENT", "CONFIRMS", "GiftCardOrderFetcher"]
