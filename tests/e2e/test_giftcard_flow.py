"""A player is paid with a gift card, end to end: every service its own process, the gift-card emulator its own
process posting signed webhooks to the webhook ingress, which fetches each order back; real Kafka and PostgreSQL.

The player wins a sponsored round, claims 25 USD to their email address, and payouts orders one card under the
payout's id; the card is delivered (after the emulator's delivery delay) and the payout is paid, once.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import Api, GameServer, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch
from prizeflow_testkit.giftcard import GiftCardAdmin

pytestmark = pytest.mark.e2e

USD = 100  # minor units in one dollar


async def test_win_claim_to_an_email_and_be_paid_with_one_gift_card(
    platform: Platform, game: GameServer, api: Api
) -> None:
    flow = uid("flow")
    player, rival, campaign = uid("p"), uid("p"), uid("camp")
    email = f"{player}@example.com"
    await api.funded_campaign(campaign, 100 * USD, asset="USD")
    await game.sponsored_round(
        flow,
        [player, rival],
        campaign_id=campaign,
        prize=30 * USD,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset="USD",
    )
    assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == 30 * USD) == 30 * USD

    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": "USD", "amount": 25 * USD, "destination": {"type": "email", "address": email}},
        headers={"X-Correlation-Id": flow},
    )
    if claim["status"] == "held":  # a destination never used before waits for a person
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=90)
    assert paid is not None
    assert paid["provider_name"] == "giftcards"
    await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{claim['claim_id']}", user=player, roles=["player"]),
        lambda c: c["status"] == "paid",
    )
    assert await api.available(player, "USD") == 5 * USD

    # The provider's own books: one card of 25 USD to the player's email under the payout's id, delivered.
    async with GiftCardAdmin(platform.url("giftcard-api")) as cards:
        orders = await cards.orders(paid["id"])
        assert len(orders) == 1
        reward = orders[0]["rewards"][0]
        assert (reward["value"], reward["recipient"]["email"], reward["delivery"]["status"]) == (
            {"denomination": 25, "currency_code": "USD"},
            email,
            "SUCCEEDED",
        )
        order_id = orders[0]["id"]
        assert paid["provider_ref"] == order_id

        # Its webhooks reached the ingress signed, were read from the order fetched back, and stored once each.
        webhooks_db = platform.procs["webhooks"].database_url
        assert webhooks_db is not None
        delivered = {e["uuid"] for e in await cards.events() if e["order_id"] == order_id}

        async def stored() -> list[Any]:
            return await fetch(
                webhooks_db,
                "SELECT provider_event_id, kind, outcome, confirmed FROM deliveries WHERE provider = 'giftcard' "
                "AND provider_event_id = ANY($1)",
                list(delivered),
            )

        rows = await wait_for(stored, lambda rs: len(rs) == len(delivered), timeout=60)
    assert {r["kind"] for r in rows} >= {"ORDERS.CREATED", "REWARDS.DELIVERY.SUCCEEDED"}
    assert all(r["confirmed"] and r["outcome"] == "published" for r in rows)
    await ledger_invariants(platform)
