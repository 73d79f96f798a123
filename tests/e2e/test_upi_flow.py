"""An INR player is paid by UPI, end to end: every service its own process, the UPI emulator (RazorpayX-shaped) its
own process posting signed `payout.*` webhooks to the ingress's `razorpayx` provider; real Kafka and PostgreSQL.

The player wins a sponsored INR round and claims to their VPA: the rail validates the VPA, pays once, and the
processed webhook reaches payouts through the ingress. A second claim goes to a VPA whose bank returns the payout
three hours after `processed`: the reversal's webhook returns the payout, and the money comes back to the wallet
exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import Api, GameServer, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch
from prizeflow_testkit.upi import UpiAdmin

pytestmark = pytest.mark.e2e

INR = 100  # paise in one rupee


async def claim(api: Api, player: str, amount: int, vpa: str, flow: str) -> dict[str, Any]:
    doc: dict[str, Any] = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={"asset": "INR", "amount": amount, "destination": {"type": "upi", "address": vpa}},
        headers={"X-Correlation-Id": flow},
    )
    if doc["status"] == "held":  # a destination never used before waits for a person
        await api.ok("POST", "rewards", f"/holds/{doc['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return doc


async def payout_of(api: Api, player: str, vpa: str) -> dict[str, Any] | None:
    doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
    return next((p for p in doc["items"] if p["destination_address"] == vpa), None)


async def test_an_inr_player_is_paid_by_upi_once_and_a_bank_return_gives_the_money_back_once(
    platform: Platform, game: GameServer, api: Api
) -> None:
    flow = uid("flow")
    player, rival, campaign = uid("p"), uid("p"), uid("camp")
    await api.funded_campaign(campaign, 1_000 * INR, asset="INR")
    await game.sponsored_round(
        flow,
        [player, rival],
        campaign_id=campaign,
        prize=600 * INR,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset="INR",
    )
    assert await wait_for(lambda: api.available(player, "INR"), lambda v: v == 600 * INR) == 600 * INR

    vpa = f"{player.replace('_', '-')}@okaxis"
    first = await claim(api, player, 250 * INR, vpa, flow)
    paid = await wait_for(
        lambda: payout_of(api, player, vpa), lambda p: p is not None and p["state"] == "paid", timeout=90
    )
    assert paid is not None
    assert paid["provider_name"] == "upi"
    await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{first['claim_id']}", user=player, roles=["player"]),
        lambda c: c["status"] == "paid",
    )
    assert await api.available(player, "INR") == 350 * INR

    async with UpiAdmin(platform.url("upi-api")) as upi:
        [made] = await upi.payouts(reference_id=paid["id"])
        assert (made["amount"], made["mode"], made["status"]) == (250 * INR, "UPI", "processed")
        assert paid["provider_ref"] == made["id"]
        webhooks_db = platform.procs["webhooks"].database_url
        assert webhooks_db is not None

        # Its webhooks reached the ingress signed and were stored once each, published.
        delivered = {str(e["id"]) for e in await upi.events(subject_id=made["id"])}

        async def stored() -> list[Any]:
            return await fetch(
                webhooks_db,
                "SELECT kind, outcome FROM deliveries WHERE provider = 'razorpayx' AND provider_event_id = ANY($1)",
                list(delivered),
            )

        rows = await wait_for(stored, lambda rs: len(rs) == len(delivered), timeout=60)
        assert {r["kind"] for r in rows} >= {"payout.initiated", "payout.processed"}
        assert all(r["outcome"] == "published" for r in rows)

        # A bank return three hours after processed.
        returned_vpa = f"{player.replace('_', '-')}.returned@okaxis"
        second = await claim(api, player, 100 * INR, returned_vpa, flow)
        back = await wait_for(
            lambda: payout_of(api, player, returned_vpa), lambda p: p is not None and p["state"] == "paid", timeout=90
        )
        assert back is not None
        assert await api.available(player, "INR") == 250 * INR
        await upi.advance(3 * 3600 + 60)
        await wait_for(
            lambda: payout_of(api, player, returned_vpa),
            lambda p: p is not None and p["state"] == "returned",
            timeout=90,
        )
        assert await wait_for(lambda: api.available(player, "INR"), lambda v: v == 350 * INR, timeout=60) == 350 * INR
        [reversal] = await upi.events("payout.reversed", back["provider_ref"])
        await upi.redeliver(str(reversal["id"]))  # delivered again: nothing moves twice
        await wait_for(
            lambda: fetch(
                webhooks_db,
                "SELECT outcome FROM deliveries WHERE provider = 'razorpayx' AND provider_event_id = $1",
                str(reversal["id"]),
            ),
            lambda rs: len(rs) == 1,
            timeout=30,
        )
    assert await api.available(player, "INR") == 350 * INR
    claim_doc = await api.ok("GET", "rewards", f"/claims/{second['claim_id']}", user=player, roles=["player"])
    assert claim_doc["status"] != "paid", claim_doc
    await ledger_invariants(platform)
