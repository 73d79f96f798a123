"""The TON rail end to end: a player wins TON and USDT, claims both to a TON wallet address (non-bounceable and
bounceable forms), and is paid: rewards → payouts (ton_wallet provider) → signer (TON intent, hot key) → the TON
API emulator (signature, seqno and valid_until checked) → paid, each exactly once on the emulated chain.

Then the same rail from the local stack's highload wallet v3 (`wallet_version: highload_v3`, payouts restarted on a
providers file that says so, and restored after): several players' TON and USDT claims at once, batched into
highload messages (one signature request per batch), each paid exactly once from the highload wallet."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import Api, GameServer, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.devenv import TON_HIGHLOAD_TIMEOUT_S
from prizeflow_devstack.platform import Platform
from prizeflow_testkit.db import fetch
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


async def paid(api: Api, player: str, *, timeout: float = 90) -> dict[str, Any]:
    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    row = await wait_for(payout, lambda p: p is not None and p["state"] in ("paid", "failed"), timeout=timeout)
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
    assert ton.ton_balance(to_ton) == 3 * NANO

    to_usdt = random_address(bounceable=True)
    player = await win_and_claim(api, game, "USDT", 25 * MICRO, to_usdt)
    await paid(api, player)
    assert ton.transfers(wallet, to_usdt) == {"ton": 0, "jetton": 1}
    assert ton.jetton_balance(master, to_usdt) == 25 * MICRO
    await wait_for(lambda: api.available(player, "USDT"), lambda v: v == 0)


@pytest.fixture
def highload_payouts(platform: Platform, tmp_path: Path) -> Iterator[None]:
    """Payouts restarted with the `ton` provider on the stack's highload wallet v3; restored afterwards."""
    base = Path(platform._base_env["PAYOUTS_PROVIDERS_FILE"])  # a directory of parts: deploy/local's and the stand-ins'
    doc = yaml.safe_load((base / "local.yaml").read_text())
    (ton,) = [p for p in doc["providers"] if p["type"] == "ton_wallet"]
    ton["options"].update(
        wallet_env="TON_HIGHLOAD_WALLET_ADDRESS",
        wallet_version="highload_v3",
        highload_timeout_s=TON_HIGHLOAD_TIMEOUT_S,
        batch_size=4,  # the test's four claims: a full batch is built at once, a partial one waits 30 s
        batch_linger_s=30.0,
    )
    ton["options"]["assets"]["USDT"]["jetton_wallet_env"] = "TON_HIGHLOAD_USDT_JETTON_WALLET"
    path = tmp_path / "providers-highload"
    path.mkdir()
    for part in base.glob("*.yaml"):
        (path / part.name).write_text(part.read_text())
    (path / "local.yaml").write_text(yaml.safe_dump(doc))
    platform.service_env.setdefault("payouts", {})["PAYOUTS_PROVIDERS_FILE"] = str(path)
    platform.restart("payouts")
    try:
        yield
    finally:
        platform.service_env["payouts"].pop("PAYOUTS_PROVIDERS_FILE")
        platform.restart("payouts")


@pytest.mark.usefixtures("highload_payouts")
async def test_claims_paid_in_batches_from_the_highload_wallet(platform: Platform, game: GameServer, api: Api) -> None:
    ton = TonApi(platform.url("ton-api"))
    highload = platform._base_env["TON_HIGHLOAD_WALLET_ADDRESS"]
    v4r2 = platform._base_env["TON_WALLET_ADDRESS"]
    master = platform._base_env["TON_USDT_MASTER"]
    wins = [("TON", 2 * NANO), ("TON", 3 * NANO), ("USDT", 7 * MICRO), ("USDT", 9 * MICRO)]
    destinations = [random_address(bounceable=i % 2 == 0) for i in range(len(wins))]
    players = await asyncio.gather(
        *(win_and_claim(api, game, asset, amount, to) for (asset, amount), to in zip(wins, destinations, strict=True))
    )
    for player in players:
        await paid(api, player, timeout=120)
    batches = await fetch(platform.procs["payouts"].database_url or "", "SELECT payouts, state FROM ton_batches")
    assert [(b["payouts"], b["state"]) for b in batches] == [(4, "landed")]  # one message paid all four
    for (asset, amount), to in zip(wins, destinations, strict=True):
        if asset == "TON":
            assert ton.transfers(highload, to) == {"ton": 1, "jetton": 0}
            assert ton.ton_balance(to) == amount
        else:
            assert ton.transfers(highload, to) == {"ton": 0, "jetton": 1}
            assert ton.jetton_balance(master, to) == amount
        assert ton.transfers(v4r2, to) == {"ton": 0, "jetton": 0}
    for player, (asset, _) in zip(players, wins, strict=True):

        async def available(p: str = player, a: str = asset) -> int:
            return await api.available(p, a)

        await wait_for(available, lambda v: v == 0)
