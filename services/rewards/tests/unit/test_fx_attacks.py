"""Currency conversion under hostile players: what a signed-in player can make the rates provider do."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.money import INT64_MAX
from prizeflow_rewards.adapters.rates_oxr import OxrRatesProvider
from prizeflow_rewards.application.fx import FxDesk, FxError, IssueQuote
from prizeflow_rewards.application.ports import MarketRate
from prizeflow_rewards.domain.fx import Pair, convert
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind


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


class _Rates:
    async def latest(self, base: str, symbol: str) -> MarketRate:
        return MarketRate(base, symbol, Decimal("83.4125"), datetime.now(UTC))


async def test_a_quote_for_more_than_a_payout_can_hold_is_refused_naming_the_amount() -> None:
    """A quote needs no balance: a player asks for one on the largest amount the API takes. Its target (paise) was
    past int64: the quote's insert failed in PostgreSQL (bigint), an internal error, not problem details naming
    the field."""
    with pytest.raises(ValueError, match="more than"):
        convert(Pair("USD", "INR"), INT64_MAX, Decimal("83.4125"), 150)
    fakes = Fakes()
    issue = IssueQuote(fakes.uow, _Rates(), FxDesk({Pair("USD", "INR"): 150}))
    player = Principal("p-1", frozenset({Role.PLAYER}))
    with pytest.raises(FxError) as refused:
        await issue(player, "p-1", source="USD", target="INR", amount=INT64_MAX)
    assert (refused.value.kind, refused.value.code) == (ErrorKind.INVALID, "amount_out_of_range")
    assert refused.value.extra["errors"][0]["key"] == "amount"
    assert fakes.fx.quotes == {}
