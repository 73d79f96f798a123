"""INR players: a share of claims asks rewards for a quote into INR and claims to the player's VPA with it (issue 47).

Rewards is played by a scripted fake behind httpx's mock transport: these tests are about what the players send and
how they count it, not about rewards' conversion (tests/e2e/test_upi_fx_flow.py runs that for real).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from prizeflow_simulator.players import (
    ClaimConfig,
    ClaimStats,
    RewardsClient,
    claim_round,
    pays_in_rupees,
    vpa_of,
)
from prizeflow_simulator.service import SimulatorSettings, player_tokens

PLAYER = "player-7"
AVAILABLE = 10_000_000


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    return httpx.Response(
        status, json={"status": status, "code": code, **extra}, headers={"content-type": "application/problem+json"}
    )


class FakeRewards:
    """Answers the wallet, quotes (`quotes`, in turn) and claims (`claims`, in turn); records what was posted."""

    def __init__(self, quotes: list[httpx.Response], claims: list[httpx.Response]) -> None:
        self.quotes, self.claims = quotes, claims
        self.posted: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"balances": [{"asset": "USDC", "available": AVAILABLE}]})
        body = json.loads(request.content)
        self.posted.append((request.url.path, body))
        return (self.quotes if request.url.path == "/fx/quotes" else self.claims).pop(0)


def client_of(fake: Callable[[httpx.Request], httpx.Response]) -> RewardsClient:
    client = RewardsClient("http://rewards.test", player_tokens(SimulatorSettings()))
    client.http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(fake))
    return client


async def one_claim(fake: FakeRewards, stats: ClaimStats, inr_share: float = 1.0) -> None:
    client = client_of(fake)
    try:
        await claim_round(
            client,
            random.Random(3),
            [PLAYER],
            asset_code="USDC",
            config=ClaimConfig(share=0.5, inr_share=inr_share),
            stats=stats,
            minimum=1,
        )
    finally:
        await client.close()


def test_the_share_of_inr_players_is_the_configured_one_and_none_once_rewards_cannot_convert() -> None:
    rng, stats = random.Random(5), ClaimStats()
    picks = [pays_in_rupees(rng, ClaimConfig(inr_share=0.25), stats) for _ in range(4000)]
    assert 0.22 < sum(picks) / len(picks) < 0.28
    assert not any(pays_in_rupees(rng, ClaimConfig(), stats) for _ in range(1000))  # off unless configured
    stats.fx_off = "rates_unavailable"
    assert not any(pays_in_rupees(rng, ClaimConfig(inr_share=1.0), stats) for _ in range(1000))
    assert vpa_of(PLAYER) == "player-7@okbank"


async def test_an_inr_player_claims_to_their_vpa_with_the_quote() -> None:
    fake = FakeRewards(
        [httpx.Response(201, json={"quote_id": "fxq-1"})], [httpx.Response(201, json={"status": "held"})]
    )
    stats = ClaimStats()
    await one_claim(fake, stats)
    amount = AVAILABLE // 2
    assert fake.posted == [
        ("/fx/quotes", {"source_asset": "USDC", "target_asset": "INR", "amount": amount}),
        (
            "/claims/",
            {
                "asset": "USDC",
                "amount": amount,
                "destination": {"type": "upi", "address": "player-7@okbank"},
                "quote_id": "fxq-1",
            },
        ),
    ]
    assert stats.outcomes == {"inr:held": 1}


@pytest.mark.parametrize("code", ["quote_moved", "quote_expired"])
async def test_a_moved_or_expired_quote_is_claimed_again_once_with_the_new_quote(code: str) -> None:
    fake = FakeRewards(
        [httpx.Response(201, json={"quote_id": "fxq-old"})],
        [
            problem(409, code, new_quote={"quote_id": "fxq-new"}),
            problem(409, code, new_quote={"quote_id": "fxq-newer"}),  # not taken: once only
        ],
    )
    stats = ClaimStats()
    await one_claim(fake, stats)
    assert [body.get("quote_id") for path, body in fake.posted if path == "/claims/"] == ["fxq-old", "fxq-new"]
    assert stats.outcomes == {"inr:requoted": 1, f"inr:refused:{code}": 1}


async def test_a_requoted_claim_accepted_the_second_time_counts_as_its_status() -> None:
    fake = FakeRewards(
        [httpx.Response(201, json={"quote_id": "fxq-old"})],
        [
            problem(409, "quote_moved", new_quote={"quote_id": "fxq-new"}),
            httpx.Response(201, json={"status": "pending"}),
        ],
    )
    stats = ClaimStats()
    await one_claim(fake, stats)
    assert stats.outcomes == {"inr:requoted": 1, "inr:pending": 1}


async def test_a_refusal_without_a_new_quote_is_not_retried() -> None:
    fake = FakeRewards(
        [httpx.Response(201, json={"quote_id": "fxq-old"})],
        [problem(409, "quote_moved", new_quote=None, new_quote_error="rates_unavailable")],
    )
    stats = ClaimStats()
    await one_claim(fake, stats)
    assert len([p for p, _ in fake.posted if p == "/claims/"]) == 1
    assert stats.outcomes == {"inr:refused:quote_moved": 1}


@pytest.mark.parametrize(
    "refusal",
    [problem(503, "rates_unavailable"), problem(400, "pair_not_enabled")],
    ids=["rates_unavailable", "pair_not_enabled"],
)
async def test_when_rewards_cannot_convert_the_inr_players_stop_and_the_claim_goes_the_usual_way(
    refusal: httpx.Response, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeRewards([refusal], [httpx.Response(201, json={"status": "pending"})] * 3)
    stats = ClaimStats()
    await one_claim(fake, stats)
    await one_claim(fake, stats)  # no second quote asked: the INR players are off
    assert [p for p, _ in fake.posted] == ["/fx/quotes", "/claims/", "/claims/"]
    assert all(body["destination"]["type"] != "upi" for p, body in fake.posted if p == "/claims/")
    assert stats.fx_off == refusal.json()["code"]
    assert stats.outcomes == {"pending": 2}
    assert len([r for r in caplog.records if "INR players stop" in r.getMessage()]) == 1
