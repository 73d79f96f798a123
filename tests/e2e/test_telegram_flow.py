"""Telegram Stars out, end to end: every service its own process, the Bot API emulator its own process.

A player wins Stars (XTR) in a sponsored round and claims them to their Telegram user id: payouts sends the gift
of that star price from the bot's balance and the claim is paid, with the bot's Star transaction as reference.
A claim of an amount no gift costs is refused by rewards before anything is reserved (payouts announced the gifts'
prices with its routes): Telegram cannot send an arbitrary amount of Stars to a user. Reuses the session platform.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from support import Api, GameServer, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit.telegram import TelegramAdmin

pytestmark = pytest.mark.e2e


async def test_win_stars_claim_them_to_telegram_and_be_paid_a_gift_of_that_price(
    platform: Platform, game: GameServer, api: Api
) -> None:
    flow = uid("flow")
    player, rival, campaign = uid("p"), uid("p"), uid("camp")
    telegram_user = str(secrets.randbelow(9 * 10**9) + 10**9)
    await api.funded_campaign(campaign, 100, asset="XTR")
    await game.sponsored_round(
        flow,
        [player, rival],
        campaign_id=campaign,
        prize=40,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset="XTR",
    )
    assert await wait_for(lambda: api.available(player, "XTR"), lambda v: v == 40) == 40

    async def claim(stars: int) -> dict[str, Any]:
        doc: dict[str, Any] = await api.ok(
            "POST",
            "rewards",
            "/claims/",
            user=player,
            roles=["player"],
            json={"asset": "XTR", "amount": stars, "destination": {"type": "telegram_user", "address": telegram_user}},
            headers={"X-Correlation-Id": flow},
        )
        if doc["status"] == "held":  # a destination never used before waits for a person
            await api.ok("POST", "rewards", f"/holds/{doc['claim_id']}/release", user="ops-1", roles=["ops"], json={})
        return doc

    async def status(claim_id: str) -> str:
        doc = await api.ok("GET", "rewards", f"/claims/{claim_id}", user=player, roles=["player"])
        return str(doc["status"])

    async with TelegramAdmin(platform.url("telegram-api")) as telegram:
        balance = await telegram.balance()
        paid = await claim(15)
        assert await wait_for(lambda: status(paid["claim_id"]), lambda s: s == "paid", timeout=90) == "paid"
        gifts = await telegram.gifts_to(int(telegram_user))
        assert [g["amount"] for g in gifts] == [15]  # one gift of 15 stars, whatever was retried
        assert await telegram.balance() == balance - 15
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        [payout] = doc["items"]
        assert (payout["provider_name"], payout["state"]) == ("telegram", "paid")
        assert payout["provider_ref"] == gifts[0]["id"]  # the bot's own Star transaction

        # No gift costs 7 stars: payouts announced the gifts' prices, so rewards refuses the claim up front and
        # reserves nothing (Telegram cannot send an arbitrary amount of Stars to a user).
        refused = await api.call(
            "POST",
            "rewards",
            "/claims/",
            user=player,
            roles=["player"],
            json={"asset": "XTR", "amount": 7, "destination": {"type": "telegram_user", "address": telegram_user}},
            headers={"X-Correlation-Id": flow},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "no_payout_route"
        assert await api.available(player, "XTR") == 25
        assert len(await telegram.gifts_to(int(telegram_user))) == 1
    await ledger_invariants(platform)
