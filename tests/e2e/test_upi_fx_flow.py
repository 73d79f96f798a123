"""A USD prize paid in rupees by UPI, end to end (issue 47): every service its own process, the rates emulator
(`rates-api`) quoting, the RazorpayX-shaped UPI emulator (`upi-api`) paying and posting signed `payout.*` webhooks
to the webhook ingress, real Kafka and PostgreSQL.

An INR player wins a USD prize in a sponsored round, asks rewards for a USD → INR quote, claims by UPI with it, the
compliance gate allows the payout, the UPI rail validates the VPA and pays the quoted paise once, and the
`payout.processed` webhook makes it paid: the wallet gives exactly the USD it claimed, the FX desk takes the net in
USD and pays the rupees, the spread is revenue. Then a bank return two hours later (the emulator's clock moved on)
brings the whole claim back to the wallet once, however often the `payout.reversed` webhook is replayed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from support import Api, GameServer, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate
from prizeflow_devstack.platform import Platform
from prizeflow_payouts.adapters.upi.provider import reference_of
from prizeflow_runtime.settings import audience_for
from prizeflow_simulator.players import (
    ClaimConfig,
    ClaimStats,
    RewardsClient,
    TokenMinter,
    claim_round,
    review_holds,
    vpa_of,
)
from prizeflow_testkit import fetch
from prizeflow_testkit.upi import UpiAdmin

pytestmark = pytest.mark.e2e

USD = 100  # minor units in one dollar (cents)
PRIZE, CLAIMED = 50 * USD, 20 * USD
SPREAD_BPS = 150  # the devstack's REWARDS_FX_PAIRS for USD/INR
TWO_HOURS = 2 * 3600


async def won_usd_prize(game: GameServer, api: Api, player: str) -> None:
    """A real round through settlement: the player wins a sponsored USD prize into their wallet."""
    flow, campaign, rival = uid("flow"), uid("camp"), uid("p")
    await api.funded_campaign(campaign, 100 * USD, asset="USD")
    await game.sponsored_round(
        flow,
        [player, rival],
        campaign_id=campaign,
        prize=PRIZE,
        template=DistributionTemplate.WINNER_TAKES_ALL,
        asset="USD",
    )
    assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == PRIZE) == PRIZE


async def claim_in_rupees(api: Api, player: str, vpa: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A quote for CLAIMED USD in INR, checked against the stated rule, then a UPI claim carrying it."""
    quote = await api.ok(
        "POST",
        "rewards",
        "/fx/quotes",
        user=player,
        roles=["player"],
        json={"source_asset": "USD", "target_asset": "INR", "amount": CLAIMED},
    )
    spread = -(-CLAIMED * SPREAD_BPS // 10_000)  # ceil: the spread never rounds in the player's favour
    assert (quote["spread_bps"], quote["spread_amount"], quote["net_amount"]) == (
        SPREAD_BPS,
        spread,
        CLAIMED - spread,
    )
    paise = (Decimal(CLAIMED - spread) * Decimal(str(quote["rate"]))).to_integral_value(ROUND_FLOOR)
    assert quote["target_amount"] == int(paise) > 0  # cents and paise are both 1/100: no rescaling
    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=player,
        roles=["player"],
        json={
            "asset": "USD",
            "amount": CLAIMED,
            "destination": {"type": "upi", "address": vpa},
            "quote_id": quote["quote_id"],
        },
    )
    if claim["status"] == "held":  # a destination never used before waits for a person
        await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})
    return quote, claim


async def payout_of(api: Api, player: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    payout = await wait_for(probe, lambda p: p is not None and p["state"] == state, timeout=90)
    assert payout is not None
    return payout


async def claim_status(api: Api, player: str, claim_id: str, status: str) -> None:
    await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{claim_id}", user=player, roles=["player"]),
        lambda c: c["status"] == status,
    )


async def claim_transfers(platform: Platform, claim_id: str) -> list[dict[str, Any]]:
    """The ledger's transfers of one claim, with both accounts' kind, owner and asset, in order."""
    db = platform.procs["rewards"].database_url
    assert db is not None
    rows: list[dict[str, Any]] = await fetch(
        db,
        "SELECT t.kind, t.asset, t.amount, t.flags, d.kind AS debit, d.owner_id AS debit_owner, "
        "c.kind AS credit, c.owner_id AS credit_owner FROM ledger_transfers t "
        "JOIN ledger_accounts d ON d.id = t.debit_account_id JOIN ledger_accounts c ON c.id = t.credit_account_id "
        "WHERE t.business_key LIKE '%|' || $1 OR t.pending_id IN "
        "(SELECT id FROM ledger_transfers WHERE business_key LIKE '%|' || $1) ORDER BY t.seq",
        claim_id,
    )
    return rows


def net_by_account(transfers: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """Each account's net movement (credits - debits) over posted (not pending) transfers, by (kind, owner, asset)."""
    net: dict[tuple[str, str, str], int] = defaultdict(int)
    for t in transfers:
        if t["flags"] & 1:  # pending: a reservation, resolved by its post or void
            continue
        net[t["credit"], t["credit_owner"], t["asset"]] += t["amount"]
        net[t["debit"], t["debit_owner"], t["asset"]] -= t["amount"]
    return {k: v for k, v in net.items() if v}


async def gate_actions(platform: Platform, payout_id: str) -> list[tuple[str, str]]:
    db = platform.procs["payouts"].database_url
    assert db is not None
    rows = await fetch(db, "SELECT stage, action FROM compliance_decisions WHERE payout_id = $1 ORDER BY id", payout_id)
    return [(r["stage"], r["action"]) for r in rows]


async def stored_deliveries(platform: Platform, event_id: str) -> int:
    db = platform.procs["webhooks"].database_url
    assert db is not None
    rows = await fetch(db, "SELECT count(*) AS n FROM deliveries WHERE provider_event_id = $1", event_id)
    return int(rows[0]["n"])


async def test_an_inr_player_claims_a_usd_prize_by_upi_with_a_quote_and_is_paid_the_quoted_paise_once(
    platform: Platform, game: GameServer, api: Api
) -> None:
    player, vpa = uid("p"), f"{uid('inr')}@okaxis"
    await won_usd_prize(game, api, player)
    quote, claim = await claim_in_rupees(api, player, vpa)

    paid = await payout_of(api, player, "paid")
    assert (paid["provider_name"], paid["asset"], paid["amount"]) == ("upi", "INR", quote["target_amount"])
    await claim_status(api, player, claim["claim_id"], "paid")
    assert await api.available(player, "USD") == PRIZE - CLAIMED  # the wallet gave exactly the USD claimed
    assert all(action == "allow" for _stage, action in await gate_actions(platform, paid["id"]))
    assert await gate_actions(platform, paid["id"])  # the gate was asked, and allowed it

    payouts_db = platform.procs["payouts"].database_url
    assert payouts_db is not None
    async with UpiAdmin(platform.url("upi-api")) as upi:
        # One UPI payout of the quoted paise, processed, to the fund account of the VPA, validated active first.
        ours = await upi.payouts(reference_id=reference_of(paid["id"]))
        assert [(p["status"], p["amount"], p["mode"], p["currency"]) for p in ours] == [
            ("processed", quote["target_amount"], "UPI", "INR")
        ]
        (fund_account,) = await fetch(
            payouts_db,
            "SELECT fund_account_id, validation, validation_id FROM upi_fund_accounts WHERE destination = $1",
            vpa,
        )
        assert (fund_account["fund_account_id"], fund_account["validation"]) == (ours[0]["fund_account_id"], "active")
        validated = [
            r["at"]
            for r in await upi.requests(method="POST", path="/v1/fund_accounts/validations")
            if r["status"] == 200
        ]
        sent = [
            r["at"]
            for r in await upi.requests(method="POST", path="/v1/payouts")
            if r["status"] == 200 and r["reference_id"] == reference_of(paid["id"])
        ]
        assert sent
        assert any(at < min(sent) for at in validated)  # the validation came before the money
        assert paid["provider_ref"] == ours[0]["id"]
        processed = await upi.events(event="payout.processed", subject_id=ours[0]["id"])
        assert len(processed) == 1
    # The signed `payout.processed` came in through the ingress and was stored once.
    assert await wait_for(lambda: stored_deliveries(platform, processed[0]["id"]), lambda n: n == 1) == 1

    # The ledger: USD out of the wallet exactly; the FX desk long the net in USD, short the paise; the spread revenue.
    spread, net, paise = quote["spread_amount"], quote["net_amount"], quote["target_amount"]
    moved = net_by_account(await claim_transfers(platform, claim["claim_id"]))
    assert moved == {
        ("player_wallet", player, "USD"): -CLAIMED,
        ("fx_position", "fx", "USD"): net,
        ("platform_revenue", "fx_spread", "USD"): spread,
        ("fx_position", "fx", "INR"): -paise,
        ("provider_external", "upi", "INR"): paise,
    }, moved
    for asset in ("USD", "INR"):  # the legs sum to zero per currency
        assert sum(v for (_k, _o, a), v in moved.items() if a == asset) == 0
    # The FX accounts' reconciliation (the daily job, run now) finds each position equal to its transfers.
    reconciled = await api.ok("POST", "rewards", "/admin/fx/reconcile", user="ops-1", roles=["ops"], json={})
    positions = {p["asset"]: p for p in reconciled["positions"]}
    assert {"USD", "INR"} <= set(positions)
    assert [p["difference"] for p in positions.values()] == [0] * len(positions)
    await ledger_invariants(platform)


async def test_a_upi_payout_reversed_two_hours_after_processed_returns_the_whole_claim_to_the_wallet_once(
    platform: Platform, game: GameServer, api: Api
) -> None:
    player, vpa = uid("p"), f"{uid('inr')}@okicici"
    async with UpiAdmin(platform.url("upi-api")) as upi:
        # The bank processes the payout, then returns it two hours later (the emulator's clock, moved below).
        await upi.rules([{"destination": vpa, "payout": "reversed_after_processed", "after_s": TWO_HOURS}])
        await won_usd_prize(game, api, player)
        quote, claim = await claim_in_rupees(api, player, vpa)
        paid = await payout_of(api, player, "paid")
        assert paid["amount"] == quote["target_amount"]
        await claim_status(api, player, claim["claim_id"], "paid")
        assert await api.available(player, "USD") == PRIZE - CLAIMED

        await upi.advance(TWO_HOURS)
        (ours,) = await upi.payouts(reference_id=reference_of(paid["id"]))
        assert ours["status"] == "reversed"
        (reversed_event,) = await upi.events(event="payout.reversed", subject_id=ours["id"])

        returned = await payout_of(api, player, "returned")
        assert returned["id"] == paid["id"]
        assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == PRIZE) == PRIZE

        # The bank's word replayed twice more: accepted by the ingress (a 2xx each), stored and applied once.
        await upi.redeliver(reversed_event["id"])
        await upi.redeliver(reversed_event["id"])

        async def deliveries() -> list[dict[str, Any]]:
            doc = await upi.deliveries()
            return [d for d in doc["deliveries"] if d["event_id"] == reversed_event["id"]]

        sent = await wait_for(deliveries, lambda ds: len(ds) == 3 and all(d["state"] == "succeeded" for d in ds))
        assert len(sent) == 3
    assert await stored_deliveries(platform, reversed_event["id"]) == 1
    await claim_status(api, player, claim["claim_id"], "returned")
    assert await api.available(player, "USD") == PRIZE  # every cent back, once

    # Back through the FX desk at the locked rate: the paise from the rail to the desk, the net and the spread to the
    # wallet; over the whole claim every account is where it started, per currency.
    transfers = await claim_transfers(platform, claim["claim_id"])
    returns = sorted((t["kind"], t["asset"], t["amount"]) for t in transfers if "return" in t["kind"])
    assert returns == sorted(
        [
            ("payout_return", "INR", quote["target_amount"]),
            ("fx_return", "USD", quote["net_amount"]),
            ("fx_spread_return", "USD", quote["spread_amount"]),
        ]
    )
    assert net_by_account(transfers) == {}
    await ledger_invariants(platform)


async def test_the_simulators_inr_player_claims_with_a_quote_and_is_paid_in_rupees_by_upi(
    platform: Platform, game: GameServer, api: Api
) -> None:
    """`make run`'s INR players (tools/simulator) against the real rewards: their quote and claim are accepted and
    the UPI rail pays the player's VPA the quoted paise."""
    player = uid("p")
    await won_usd_prize(game, api, player)
    stats, rng = ClaimStats(), random.Random(1)
    client = RewardsClient(
        platform.url("rewards"),
        TokenMinter(platform.identity, audience=audience_for("rewards"), issuer=platform.identity.issuer),
    )
    try:
        config = ClaimConfig(share=CLAIMED / PRIZE, inr_share=1.0)
        await claim_round(client, rng, [player], asset_code="USD", config=config, stats=stats, minimum=1)
        assert stats.fx_off is None
        assert set(stats.outcomes) <= {"inr:held", "inr:approved", "inr:requoted"}, stats.outcomes
        await review_holds(client, rng, stats, reject_rate=0.0)  # a new VPA waits for the simulated ops
    finally:
        await client.close()
    paid = await payout_of(api, player, "paid")
    assert (paid["provider_name"], paid["asset"]) == ("upi", "INR")
    assert await api.available(player, "USD") == PRIZE - CLAIMED
    async with UpiAdmin(platform.url("upi-api")) as upi:
        (ours,) = await upi.payouts(reference_id=reference_of(paid["id"]))
        assert (ours["status"], ours["amount"], ours["mode"]) == ("processed", paid["amount"], "UPI")
    db = platform.procs["payouts"].database_url
    assert db is not None
    (fund_account,) = await fetch(db, "SELECT validation FROM upi_fund_accounts WHERE destination = $1", vpa_of(player))
    assert fund_account["validation"] == "active"
