"""Currency conversion under hostile players: what a signed-in player can make the rates provider do."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from prizeflow_rewards.adapters.rates_oxr import OxrRatesProvider


@pytest.mark.xfail(
    strict=True,
    reason="defect: every POST /fx/quotes (and every claim naming a quote) calls OXR once, uncached "
    "(adapters/rates_oxr.py:29, application/fx.py:112 market_rate): one player spamming quotes spends the App ID's "
    "monthly quota, then OXR refuses and every quote and converted claim is 503 rates_unavailable for all players",
)
async def test_quotes_in_a_burst_read_the_rate_from_the_provider_once() -> None:
    calls: list[httpx.Request] = []

    def oxr(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"timestamp": 1_750_000_000, "base": "USD", "rates": {"INR": 83.4125}})

    rates = OxrRatesProvider(base_url="http://oxr.test", app_id="app-id")
    rates._client._transport = httpx.MockTransport(oxr)  # the adapter takes no transport
    try:
        for _ in range(100):  # a player's burst of quotes: OXR publishes a rate at most once a minute
            assert (await rates.latest("USD", "INR")).rate == Decimal("83.4125")
    finally:
        await rates.aclose()
    assert len(calls) == 1, f"{len(calls)} calls to OXR"
