"""Money in and out through Stripe, end to end: every service its own process, the Stripe emulator its own
process posting signed webhooks to the webhook ingress, real Kafka and PostgreSQL.

A player tops up with Stripe Checkout (the webhook delivered three times and in reverse order), pays the entry
fee of a round from that wallet, wins, claims to their Stripe connected account, and is paid by a transfer
and a bank payout whose `payout.paid` webhook comes back through the ingress. One correlation id joins it all.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import Api, GameServer, gather_events, ledger_invariants, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate, PaidVia
from prizeflow_contracts.topics import (
    AUDIT,
    PAYOUT_EVENTS,
    PAYOUT_REQUESTS,
    REWARDS_EVENTS,
    SETTLEMENT_ROUNDS,
    WEBHOOK_PROVIDER_EVENTS,
)
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch
from prizeflow_testkit.stripe import StripeAdmin

pytestmark = pytest.mark.e2e

USD = 100  # minor units in one dollar


async def test_top_up_with_stripe_play_win_claim_and_be_paid_through_stripe_under_one_correlation_id(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    flow = uid("flow")  # the round id, and the correlation id of everything the player does around it
    player, rival, campaign = uid("p"), uid("p"), uid("camp")
    await api.funded_campaign(campaign, 100 * USD, asset="USD")
    # The rival's entry fee comes from an admin credit; the player's from a card, through Stripe Checkout.
    await api.ok(
        "POST",
        "rewards",
        f"/wallets/{rival}/top-ups",
        user="cashier",
        roles=["admin"],
        json={"asset": "USD", "amount": 5 * USD, "provider": "sandbox", "reference": uid("cash")},
    )

    async with StripeAdmin(platform.url("stripe-api")) as stripe:
        account = (await stripe.create_account())["id"]  # the player's Stripe connected account

        # -- top-up: the checkout's webhooks are held, tripled, then released newest first --------------------
        await stripe.hold()
        await stripe.duplicates(3)
        session = await api.ok(
            "POST",
            "rewards",
            f"/wallets/{player}/top-up-sessions",
            user=player,
            roles=["player"],
            json={"asset": "USD", "amount": 20 * USD},
            headers={"Idempotency-Key": uid("k"), "X-Correlation-Id": flow},
        )
        assert session["status"] == "created"
        assert session["url"].startswith(platform.url("stripe-api"))
        assert await api.available(player, "USD") == 0  # nothing before the provider says it is paid
        await stripe.complete_session(session["session_ref"], "paid")
        released = await stripe.release("reverse")
        await stripe.duplicates(1)
        completed = [d for d in released if d["event_type"] == "checkout.session.completed"]
        assert len(completed) == 3, released
        await stripe.wait_deliveries(
            lambda ds: all(d["state"] == "succeeded" for d in ds if d["event_id"] == completed[0]["event_id"])
        )
        assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == 20 * USD) == 20 * USD

        # -- a paid round: both pay 5 USD from their wallets, the player wins the 30 USD prize ----------------
        await game.sponsored_round(
            flow,
            [player, rival],
            campaign_id=campaign,
            prize=30 * USD,
            template=DistributionTemplate.WINNER_TAKES_ALL,
            entry_fee=5 * USD,
            paid_via=PaidVia.WALLET,
            asset="USD",
        )
        assert await wait_for(lambda: api.available(player, "USD"), lambda v: v == 45 * USD) == 45 * USD

        # -- claim 40 USD to the connected account: transfer + bank payout, paid by the bank's webhook -------
        claim = await api.ok(
            "POST",
            "rewards",
            "/claims/",
            user=player,
            roles=["player"],
            json={"asset": "USD", "amount": 40 * USD, "destination": {"type": "stripe_account", "address": account}},
            headers={"X-Correlation-Id": flow},
        )
        if claim["status"] == "held":  # a destination never used before waits for a person
            await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

        async def payout() -> dict[str, Any] | None:
            doc = await api.ok("GET", "payouts", f"/payouts/?player_id={player}", user="ops-1", roles=["ops"])
            return doc["items"][0] if doc["items"] else None

        paid = await wait_for(payout, lambda p: p is not None and p["state"] == "paid", timeout=90)
        assert paid is not None
        assert paid["provider_name"] == "stripe"
        await wait_for(
            lambda: api.ok("GET", "rewards", f"/claims/{claim['claim_id']}", user=player, roles=["player"]),
            lambda c: c["status"] == "paid",
        )
        assert await api.available(player, "USD") == 5 * USD

        # Stripe's own books: one transfer and one bank payout of 40 USD to the player, whatever was retried.
        transfers = [t for t in (await stripe.requests(method="POST", path="/v1/transfers")) if t["status"] == 200]
        ours = [t for t in transfers if t["params"].get("destination") == account and not t["replayed"]]
        assert [int(t["params"]["amount"]) for t in ours] == [40 * USD]
        payouts = [
            r
            for r in await stripe.requests(method="POST", path="/v1/payouts")
            if r["account"] == account and r["status"] == 200 and not r["replayed"]
        ]
        assert len(payouts) == 1

    # The webhook ingress stored each Stripe event once, however often it was delivered.
    webhooks_db = platform.procs["webhooks"].database_url
    assert webhooks_db is not None
    stored = await fetch(
        webhooks_db, "SELECT provider_event_id, count(*) AS n FROM deliveries GROUP BY provider_event_id"
    )
    assert stored
    assert all(row["n"] == 1 for row in stored)
    await ledger_invariants(platform)

    # One correlation id from the top-up's webhook through the round, the claim and the payout's webhook.
    s = platform.suffix
    topics = [
        t.name + s
        for t in (WEBHOOK_PROVIDER_EVENTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS, PAYOUT_REQUESTS, PAYOUT_EVENTS, AUDIT)
    ]

    async def chain() -> list[Any]:
        return [e for e in await gather_events(kafka_bootstrap, topics) if e.correlationid == flow]

    expected = {
        "PaymentEventReceived",
        "TopUpCredited",
        "EntryAccepted",
        "RoundSettled",
        "RewardAllocated",
        "PayoutRequested",
        "PayoutCreated",
        "PayoutPaid",
        "ProviderEventReceived",
    }
    events = await wait_for(chain, lambda es: expected <= {e.data.EVENT_NAME for e in es})
    credited = [e for e in events if e.data.EVENT_NAME == "TopUpCredited"]
    assert len(credited) == 1
    assert credited[0].data.amount.amount == 20 * USD
    paid_reports = [e for e in events if e.data.EVENT_NAME == "ProviderEventReceived" and e.data.kind == "payout.paid"]
    assert len(paid_reports) == 1
    assert paid_reports[0].source == "/prizeflow/webhooks"

    # The same story from each service's own records (`GET /admin/timeline/{correlation_id}`), merged in time order
    # as `prizeflow-ops trace` merges it: every service knows its part, and none tells the player's id or account.
    wanted = {
        "settlement": {("event", "RoundSettled"), ("state", "round.settled")},
        "rewards": {
            ("ledger", "top_up_credit"),
            ("ledger", "entry_fee"),
            ("ledger", "reward"),
            ("ledger", "claim_reserve"),
        },
        "payouts": {("state", "payout.requested"), ("state", "payout.paid")},
        "webhooks": {("delivery", "checkout.session.completed"), ("delivery", "payout.paid")},
    }

    async def timelines() -> dict[str, list[dict[str, Any]]]:
        return {
            service: (await api.ok("GET", service, f"/admin/timeline/{flow}", user="ops-1", roles=["ops"]))["entries"]
            for service in wanted
        }

    told = await wait_for(
        timelines, lambda t: all(want <= {(e["kind"], e["type"]) for e in t[s]} for s, want in wanted.items())
    )
    merged = sorted((e for entries in told.values() for e in entries), key=lambda e: e["at"])
    assert {e["service"] for e in merged} == set(wanted)
    for entries in told.values():
        assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert account not in str(merged)
    assert all(player not in e["summary"] for e in merged)
