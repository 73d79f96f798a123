"""Claim → paid through a crypto-exchange withdrawal, end to end: every service its own process, the exchange
emulator (service `exchange-api`) its own process verifying ccxt's signed requests, real Kafka and PostgreSQL.

A player wins a sponsored round, claims 10 USDC to a whitelisted Ethereum address, the payout is auto-approved,
the `crypto_exchange` rail withdraws once (its client id on the exchange's record), and the exchange completing
the withdrawal is what makes the payout (and the claim) paid, found by the status sync.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest
from support import Api, GameServer, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_payouts.adapters.exchange import client_id_for
from prizeflow_testkit.exchange import ETH_ADDRESS

pytestmark = pytest.mark.e2e

USDC = 10_000_000  # minor units in one USDC


async def test_a_claim_to_a_crypto_address_is_paid_by_one_exchange_withdrawal(
    platform: Platform, game: GameServer, api: Api
) -> None:
    flow, campaign = uid("flow"), uid("camp")
    player, rival = uid("p"), uid("p")
    await api.funded_campaign(campaign, 100 * USDC)
    await game.sponsored_round(
        flow, [player, rival], campaign_id=campaign, prize=20 * USDC, template=DistributionTemplate.WINNER_TAKES_ALL
    )
    assert await wait_for(lambda: api.available(player), lambda v: v == 20 * USDC) == 20 * USDC

    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": "USDC", "amount": 10 * USDC, "destination": {"type": "crypto_address", "address": ETH_ADDRESS}},
        headers={"X-Correlation-Id": flow},
    )
    if claim["status"] == "held":  # a destination never used before waits for a person
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=90)
    assert paid is not None
    assert paid["provider_name"] == "exchange"
    await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{claim['claim_id']}", user=player, roles=["player"]),
        lambda c: c["status"] == "paid",
    )
    assert await api.available(player) == 10 * USDC

    # The exchange's own books: one withdrawal of 10 USDC to the address, carrying the payout's client id.
    async with httpx.AsyncClient(base_url=platform.url("exchange-api")) as exchange:
        withdrawals = (await exchange.get("/_emulator/withdrawals")).json()
    ours = [w for w in withdrawals if w.get("withdrawOrderId") == client_id_for(paid["idempotency_key"])]
    assert [(w["address"], Decimal(w["requested"]), w["status"]) for w in ours] == [(ETH_ADDRESS, Decimal(10), 6)]
    assert paid["provider_ref"] == ours[0]["id"]
