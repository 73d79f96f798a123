"""Currency conversion under hostile players: what a signed-in player can make the rates provider do."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from rewards_fakes import Fakes

from prizeflow_contracts.money import INT64_MAX
from prizeflow_rewards.adapters.rates_oxr import OxrRatesProvider
from prizeflow_rewards.application.fx import FxDesk, FxError, IssueQuote
from prizeflow_rewards.application.ports import MarketRate, RatesUnavailableError
from prizeflow_rewards.domain.fx import Pair, convert
from prizeflow_runtime.auth import Principal, Role
from prizeflow_runtime.errors import ErrorKind


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


async def test_a_burst_asking_at_once_shares_one_read_a_failure_is_not_kept_and_a_kept_rate_expires() -> None:
    """Callers asking while a read is in flight share it; a failed read is asked again by the next caller; a rate is
    kept `cache_s` seconds, then read again (a move at the provider shows up)."""
    calls: list[httpx.Request] = []
    answers = [httpx.Response(503, json={"message": "busy"})]
    release = asyncio.Event()

    async def oxr(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await release.wait()
        if answers:
            return answers.pop(0)
        return httpx.Response(200, json={"timestamp": 1_750_000_000, "base": "USD", "rates": {"INR": 83.4125}})

    rates = OxrRatesProvider(base_url="http://oxr.test", app_id="app-id", cache_s=0.2)
    rates._client._transport = httpx.MockTransport(oxr)
    try:
        burst = [asyncio.ensure_future(rates.latest("USD", "INR")) for _ in range(20)]
        await asyncio.sleep(0.05)
        release.set()
        outcomes = await asyncio.gather(*burst, return_exceptions=True)
        assert len(calls) == 1
        assert all(isinstance(o, RatesUnavailableError) for o in outcomes)  # one failure, shared, not kept
        assert (await rates.latest("USD", "INR")).rate == Decimal("83.4125")
        assert (await rates.latest("USD", "INR")).rate == Decimal("83.4125")
        assert len(calls) == 2
        await asyncio.sleep(0.25)
        await rates.latest("USD", "INR")
        assert len(calls) == 3
    finally:
        await rates.aclose()


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
