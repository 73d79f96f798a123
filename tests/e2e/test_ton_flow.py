"""The TON rail end to end: a player wins TON and USDT, claims both to a TON wallet address (non-bounceable and
bounceable forms), and is paid: rewards → payouts (ton_wallet provider) → signer (TON intent, hot key) → the TON
API emulator (signature, seqno and valid_until checked) → paid, each exactly once on the emulated chain."""

from __future__ import annotations

from typing import Any

import pytest
from support import Api, GameServer, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit.ton import TonApi, random_address

pytestmark = pytest.mark.e2e

NANO = 10**9  # minor units in one TON
MICRO = 10**6  # minor units in one USDT


async def win_and_claim(api: Api, game: GameServer, asset: str, amount: int, destination: str) -> str:
    campaign, round_id, player = uid("camp"), uid("round"), uid("p")
    await api.funded_campaign(campaign, amount, asset=asset)
    await game.sponsored_round(
        round_id,
        [player, uid("p")],
        campaign_id=campaign,
        prize=amount,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset=asset,
    )
    await wait_for(lambda: api.available(player, asset), lambda v: v == amount)
    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        headers={"X-Correlation-Id": round_id},
        json={"asset": asset, "amount": amount, "destination": {"type": "ton_wallet", "address": destination}},
    )
    if claim["status"] == "held":
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return player


async def paid(api: Api, player: str) -> dict[str, Any]:
    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    row = await wait_for(payout, lambda p: p is not None and p["state"] in ("paid", "failed"), timeout=90)
    assert row is not None
    assert row["state"] == "paid", row
    assert row["provider_type"] == "ton_wallet"
    return row


async def test_claims_paid_in_ton_and_usdt_on_the_ton_emulator(platform: Platform, game: GameServer, api: Api) -> None:
    ton = TonApi(platform.url("ton-api"))
    wallet = platform._base_env["TON_WALLET_ADDRESS"]
    master = platform._base_env["TON_USDT_MASTER"]

    to_ton = random_address(bounceable=False)
    player = await win_and_claim(api, game, "TON", 3 * NANO, to_ton)
    await paid(api, player)
    assert ton.transfers(wallet, to_ton) == {"ton": 1, "jetton": 0}
    assert int(ton.call("GET", "/emulator/balances", address=to_ton)["ton"]) == 3 * NANO

    to_usdt = random_address(bounceable=True)
    player = await win_and_claim(api, game, "USDT", 25 * MICRO, to_usdt)
    await paid(api, player)
    assert ton.transfers(wallet, to_usdt) == {"ton": 0, "jetton": 1}
    assert ton.jetton_balance(master, to_usdt) == 25 * MICRO
    await wait_for(lambda: api.available(player, "USDT"), lambda v: v == 0)
