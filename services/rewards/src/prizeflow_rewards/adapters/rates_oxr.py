"""Open Exchange Rates as the `RatesProvider` (`GET /api/latest.json?base=&symbols=`, App ID in `Authorization:
Token`), against the real service or `tools/rates-emulator` by base URL.

The body is parsed with `parse_float=Decimal`: a rate is the exact decimal OXR wrote, never a float. Anything but a
200 with the asked rate in it — OXR's error object, an HTML page from a load balancer, a timeout — is
`RatesUnavailableError`, naming the status and OXR's `message` (never the App ID).

A rate read is kept `cache_s` seconds per pair (`RATES_CACHE_S`; OXR publishes at most once a minute), and callers
asking while a read is in flight share it: a burst of quotes or converted claims costs one call, not one each (an
App ID's monthly quota spent by one player's burst would leave every player's quote 503). A failure is not kept.
A rate moved at the provider shows up once the kept one is older than `cache_s`.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from prizeflow_rewards.application.ports import MarketRate, RatesUnavailableError


class OxrRatesProvider:
    def __init__(self, *, base_url: str, app_id: str, timeout_s: float = 5.0, cache_s: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api",
            headers={"Authorization": f"Token {app_id}", "Accept": "application/json"},
            timeout=timeout_s,
        )
        self._cache_s = cache_s
        self._kept: dict[tuple[str, str], tuple[float, MarketRate]] = {}  # pair -> (kept until, rate): enabled pairs
        self._reading: dict[tuple[str, str], asyncio.Task[MarketRate]] = {}

    async def latest(self, base: str, symbol: str) -> MarketRate:
        pair = (base, symbol)
        kept = self._kept.get(pair)
        if kept is not None and time.monotonic() < kept[0]:
            return kept[1]
        reading = self._reading.get(pair)
        if reading is None:
            reading = asyncio.get_running_loop().create_task(self._read(base, symbol))
            self._reading[pair] = reading
            reading.add_done_callback(lambda done: self._settled(pair, done))
        return await asyncio.shield(reading)  # a caller that gives up does not cancel the others' read

    def _settled(self, pair: tuple[str, str], done: asyncio.Task[MarketRate]) -> None:
        self._reading.pop(pair, None)
        if not done.cancelled() and done.exception() is None and self._cache_s > 0:
            self._kept[pair] = (time.monotonic() + self._cache_s, done.result())

    async def _read(self, base: str, symbol: str) -> MarketRate:
        try:
            response = await self._client.get("/latest.json", params={"base": base, "symbols": symbol})
        except httpx.HTTPError as err:
            raise RatesUnavailableError(f"no answer ({type(err).__name__})") from err
        body = _json(response)
        if response.status_code != 200:
            message = body.get("message") if isinstance(body, dict) else None
            raise RatesUnavailableError(f"HTTP {response.status_code} {message or ''}".strip())
        try:
            rate = body["rates"][symbol]
            timestamp = body["timestamp"]
        except (KeyError, TypeError) as err:
            raise RatesUnavailableError(f"no {symbol} rate per {base} in the answer") from err
        if isinstance(rate, int) and not isinstance(rate, bool):
            rate = Decimal(rate)
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
            raise RatesUnavailableError(f"the {symbol} rate is not a positive number")
        if not isinstance(timestamp, int) or isinstance(timestamp, bool):
            raise RatesUnavailableError("the answer's timestamp is not an integer")
        return MarketRate(base, symbol, rate, datetime.fromtimestamp(timestamp, UTC))

    async def aclose(self) -> None:
        await self._client.aclose()


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.text, parse_float=Decimal)
    except ValueError:
        return None


__all__ = ["OxrRatesProvider"]
