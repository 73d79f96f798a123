"""`RazorpayxPayoutFetcher`: the `PayoutFetcher` port over RazorpayX's Payouts API (httpx).

`GET /v1/payouts/{id}` with the key id and secret (basic auth). No retries here: a provider that cannot answer is
a 503 to it, and it delivers again later. An unknown id (RazorpayX answers 400 "The id provided does not exist", or
404) is None: the event is not confirmed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import httpx

from prizeflow_contracts.rails.reading import ProviderUnavailableError
from prizeflow_webhooks.adapters.config import ConfirmConfig

_ID_RE = re.compile(r"pout_[A-Za-z0-9]{1,32}")  # what goes into a URL path
_OK, _BAD_REQUEST, _NOT_FOUND = 200, 400, 404


class RazorpayxPayoutFetcher:
    def __init__(self, config: ConfirmConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not config.api_key_id:
            raise ValueError("a RazorpayX confirmation needs confirm.api_key_id (the key id) and api_key (its secret)")
        self._config = config
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._config.api_base + "/v1/",
                auth=(self._config.api_key_id or "", self._config.api_key),
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

    async def fetch_payout(self, payout_id: str) -> Mapping[str, Any] | None:
        if not _ID_RE.fullmatch(payout_id):
            return None
        try:
            resp = await self._client().get(f"payouts/{payout_id}")
        except httpx.HTTPError as err:
            raise ProviderUnavailableError(f"RazorpayX unreachable ({type(err).__name__})") from None
        try:
            doc = json.loads(resp.content) if resp.content else None
        except ValueError:
            doc = None
        if resp.status_code == _NOT_FOUND or (resp.status_code == _BAD_REQUEST and _no_such_id(doc)):
            return None
        if resp.status_code != _OK:
            # A refusal (a bad key included) is an outage of ours, not the event's fault: ask again later.
            raise ProviderUnavailableError(f"RazorpayX refused the lookup (HTTP {resp.status_code})")
        if not isinstance(doc, dict) or doc.get("entity") != "payout":
            raise ProviderUnavailableError("RazorpayX answered no payout")
        return doc


def _no_such_id(doc: Any) -> bool:
    error = doc.get("error") if isinstance(doc, dict) else None
    return isinstance(error, dict) and "does not exist" in str(error.get("description") or "")


# The scheme whose provider this client asks back (`confirm_apis` finds it by this name).
CONFIRMS: Final = "razorpay_signature"
CLIENT: Final = RazorpayxPayoutFetcher

__all__ = ["CLIENT", "CONFIRMS", "RazorpayxPayoutFetcher"]
