"""A player is paid by PayPal, end to end: every service its own process, the PayPal emulator its own process
posting webhooks signed as PayPal signs them to the ingress's `paypal` provider, which checks them under the pinned
certificate and fetches each item back; real Kafka and PostgreSQL.

The player wins a sponsored round and claims 25 USD to their PayPal email: payouts sends it in a batch, PayPal pays
the item once, and the payout and the claim are paid. A second claim goes to an address with no PayPal account: the
item waits unclaimed (the payout stays submitted), then PayPal returns it, and the money comes back to the player's
wallet exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import Api, GameServer, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch
from prizeflow_testkit.paypal import PayPalAdmin

pytestmark = pytest.mark.e2e

USD = 100  # cents in one dollar


async def claim(api: Api, player: str, amount: int, email: str, flow: str) -> dict[str, Any]:
    doc: dict[str, Any] = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": "USD", "amount": amount, "destination": {"type": "paypal", "address": email}},
        headers={"X-Correlation-Id": flow},
    )
    if doc["status"] == "held":  # a destination never used before waits for a person
        await api.ok("POST", "rewards", f"/holds/{doc['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return doc


async def payout_of(api: Api, player: str, email: str) -> dict[str, Any] | None:
    doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
    return next((p for p in doc["items"] if p["destination_address"] == email), None)


async def test_a_player_is_paid_by_paypal_once_and_an_unclaimed_payout_comes_back_once(
    platform: Platform, game: GameServer, api: Api
) -> None:
    flow = uid("flow")
    player, rival, campaign = uid("p"), uid("p"), uid("camp")
    await api.funded_campaign(campaign, 100 * USD, asset="USD")
    await game.sponsored_round(
        flow,
        [player, rival],
        campaign_id=campaign,
        prize=40 * USD,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset="USD",
    )
    assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == 40 * USD) == 40 * USD

    email = f"{player.replace('_', '-')}@example.com"
    first = await claim(api, player, 25 * USD, email, flow)
    paid = await wait_for(
        lambda: payout_of(api, player, email), lambda p: p is not None and p["state"] == "paid", timeout=90
    )
    assert paid is not None
    assert paid["provider_name"] == "paypal"
    await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{first['claim_id']}", user=player, roles=["player"]),
        lambda c: c["status"] == "paid",
    )
    assert await api.available(player, "USD") == 15 * USD

    async with PayPalAdmin(platform.url("paypal-api")) as paypal:
        # PayPal's own books: one item of 25.00 USD to the player's email under the payout's key, paid.
        [item] = await paypal.items(sender_item_id=paid["idempotency_key"])
        assert (item["payout_item"]["amount"], item["payout_item"]["receiver"], item["transaction_status"]) == (
            {"value": "25.00", "currency": "USD"},
            email,
            "SUCCESS",
        )
        assert paid["provider_ref"] == item["payout_item_id"]

        # Its webhooks reached the ingress signed, were confirmed by fetching the item back, and stored once each.
        webhooks_db = platform.procs["webhooks"].database_url
        assert webhooks_db is not None
        sent = {str(e["id"]) for e in await paypal.events(subject_id=item["payout_item_id"])}

        async def stored() -> list[Any]:
            return await fetch(
                webhooks_db,
                "SELECT kind, outcome, confirmed FROM deliveries WHERE provider = 'paypal' "
                "AND provider_event_id = ANY($1)",
                list(sent),
            )

        rows = await wait_for(stored, lambda rs: len(rs) == len(sent), timeout=60)
        assert {r["kind"] for r in rows} >= {"PAYMENT.PAYOUTS-ITEM.SUCCEEDED"}
        assert all(r["confirmed"] and r["outcome"] == "published" for r in rows)

        # No PayPal account behind the second address: unclaimed (pending), then returned by PayPal.
        nobody = f"{player.replace('_', '-')}.unclaimed@example.com"
        await claim(api, player, 10 * USD, nobody, flow)

        async def unclaimed() -> list[dict[str, Any]]:
            return [i for i in await paypal.items(receiver=nobody) if i["transaction_status"] == "UNCLAIMED"]

        [waiting] = await wait_for(unclaimed, bool, timeout=90)
        held = await payout_of(api, player, nobody)
        assert held is not None
        assert held["state"] in ("submitting", "submitted")
        assert await api.available(player, "USD") == 5 * USD
        await paypal.item(waiting["payout_item_id"], "return")  # PayPal's 30 days, now
        failed = await wait_for(
            lambda: payout_of(api, player, nobody), lambda p: p is not None and p["state"] == "failed", timeout=90
        )
        assert failed is not None
        assert failed["last_error_code"] == "destination_not_found"
        assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == 15 * USD, timeout=60) == 15 * USD
    await ledger_invariants(platform)
