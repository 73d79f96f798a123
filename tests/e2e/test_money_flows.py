"""The platform end to end: every service its own process, real Kafka and PostgreSQL.

Game events go in at one end (as a game server publishes them); players, ops, approvers and admins act
through the HTTP APIs; the assertions read what each service itself recorded (ledger, payouts, the sandbox
provider's own books) and what flowed on Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import USDC, Api, GameServer, events_on, gather_events, ledger_invariants, results_of, uid, wait_for

from prizeflow_contracts.events.game import DistributionTemplate, PaidVia
from prizeflow_contracts.topics import AUDIT, PAYOUT_EVENTS, PAYOUT_REQUESTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_devstack.platform import Platform
from prizeflow_testkit import fetch

pytestmark = pytest.mark.e2e


def refresh_available(api: Api, player: str) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return await api.available(player)

    return probe


async def test_sponsored_round_to_paid_payout_with_one_correlation_id(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    winner, second, third = uid("p"), uid("p"), uid("p")
    await api.funded_campaign(campaign, 1_000 * USDC)
    await game.sponsored_round(round_id, [winner, second, third], campaign_id=campaign, prize=400 * USDC)

    # top3 = 50/30/20 %: the ledger credits each wallet exactly its allocation.
    assert await wait_for(lambda: api.available(winner), lambda v: v == 200 * USDC) == 200 * USDC
    assert await api.available(second) == 120 * USDC
    assert await api.available(third) == 80 * USDC

    # The winner claims 150 USDC to a sandbox destination, tying the claim to the round it won.
    claim = await api.ok(
        "POST",
        "rewards",
        "/claims/",
        user=winner,
        roles=["player"],
        json={
            "asset": "USDC",
            "amount": 150 * USDC,
            "destination": {"type": "sandbox", "address": f"success:{winner}"},
        },
        headers={"X-Correlation-Id": round_id},
    )
    assert claim["status"] == "held"  # a destination never used before waits for review
    assert claim["hold_code"] == "new_destination"
    await api.ok("POST", "rewards", f"/holds/{claim['claim_id']}/release", user="ops-1", roles=["ops"], json={})

    async def payout() -> dict[str, Any] | None:
        doc = await api.ok("GET", "payouts", f"/payouts/?player_id={winner}", user="ops-1", roles=["ops"])
        return doc["items"][0] if doc["items"] else None

    pending = await wait_for(payout, lambda p: p is not None and p["state"] == "pending_approval")
    assert pending is not None
    # 150 USDC is above the auto-approval threshold (100): one approver, never the requester.
    await api.ok(
        "POST",
        "payouts",
        f"/payouts/{pending['id']}/approve",
        user="approver-1",
        roles=["approver"],
        json={"reason": "checked"},
    )
    await wait_for(payout, lambda p: p is not None and p["state"] == "paid")

    # The rewards ledger posts the reservation: 50 USDC left, nothing pending.
    await wait_for(lambda: api.available(winner), lambda v: v == 50 * USDC)
    claim_doc = await wait_for(
        lambda: api.ok("GET", "rewards", f"/claims/{claim['claim_id']}", user=winner, roles=["player"]),
        lambda c: c["status"] == "paid",
    )
    assert claim_doc["amount"] == 150 * USDC
    rewards_db = platform.procs["rewards"].database_url
    assert rewards_db is not None
    wallet = await fetch(
        rewards_db,
        "SELECT debits_posted, debits_pending FROM ledger_accounts WHERE kind = 'player_wallet' AND owner_id = $1",
        winner,
    )
    assert [(w["debits_posted"], w["debits_pending"]) for w in wallet] == [(150 * USDC, 0)]
    await ledger_invariants(platform)

    # The sandbox provider's own books: exactly one transfer for this payout.
    payouts_db = platform.procs["payouts"].database_url
    assert payouts_db is not None
    transfers = await fetch(
        payouts_db,
        "SELECT t.amount FROM sandbox.transfers t JOIN payouts p ON p.idempotency_key = t.idempotency_key "
        "WHERE p.id = $1",
        pending["id"],
    )
    assert [t["amount"] for t in transfers] == [150 * USDC]

    # One correlation id from the round through settlement, allocation, claim, payout and audit.
    s = platform.suffix
    topics = [t.name + s for t in (SETTLEMENT_ROUNDS, REWARDS_EVENTS, PAYOUT_REQUESTS, PAYOUT_EVENTS, AUDIT)]

    async def chain() -> set[str]:
        return {e.data.EVENT_NAME for e in await gather_events(kafka_bootstrap, topics) if e.correlationid == round_id}

    expected = {
        "RoundStateChanged",
        "RoundSettled",
        "RewardAllocated",
        "ClaimHeld",
        "PayoutRequested",
        "PayoutCreated",
        "PayoutApproved",
        "PayoutPaid",
        "AdminActionRecorded",
    }
    assert expected <= await wait_for(chain, lambda names: expected <= names)


async def test_voided_round_refunds_wallet_paid_entry_fees(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    players = [uid("p"), uid("p")]
    await api.funded_campaign(campaign, 100 * USDC)
    for p in players:  # players top their wallets up, then pay the entry fee from it
        await api.ok(
            "POST",
            "rewards",
            f"/wallets/{p}/top-ups",
            user="cashier",
            roles=["admin"],
            json={"asset": "USDC", "amount": 10 * USDC, "provider": "sandbox", "reference": uid("topup")},
        )
    await game.sponsored_round(
        round_id,
        players,
        campaign_id=campaign,
        prize=50 * USDC,
        entry_fee=2 * USDC,
        paid_via=PaidVia.WALLET,
        close=False,
        results=False,
    )
    await wait_for(lambda: api.available(players[0]), lambda v: v == 8 * USDC)
    await game.void(round_id)
    for p in players:
        assert await wait_for(refresh_available(api, p), lambda v: v == 10 * USDC) == 10 * USDC

    voided = [
        e
        for e in await events_on(kafka_bootstrap, SETTLEMENT_ROUNDS.name + platform.suffix)
        if e.correlationid == round_id and e.data.EVENT_NAME == "RoundVoided"
    ]
    assert len(voided) == 1
    assert sorted(r.player_id for r in voided[0].data.refunds) == sorted(players)
    refunds = [
        e
        for e in await events_on(kafka_bootstrap, REWARDS_EVENTS.name + platform.suffix)
        if e.correlationid == round_id and e.data.EVENT_NAME == "RefundIssued"
    ]
    assert len(refunds) == 2
    await ledger_invariants(platform)


async def test_dispute_is_raised_and_an_admin_resolution_is_audited(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    a, b = uid("p"), uid("p")
    await api.funded_campaign(campaign, 100 * USDC)
    await game.sponsored_round(
        round_id, [a, b], campaign_id=campaign, prize=10 * USDC, template=DistributionTemplate.WINNER_TAKES_ALL
    )
    await wait_for(lambda: api.available(a), lambda v: v == 10 * USDC)
    # The game server reports different results for the settled round: a dispute, nothing moves.
    await game.publish(round_id, results_of(round_id, [b, a]))

    async def round_doc() -> Any:
        return await api.ok("GET", "settlement", f"/rounds/{round_id}", user="admin-1", roles=["admin"])

    disputed = await wait_for(round_doc, lambda r: bool(r.get("disputed")))
    assert disputed["state"] == "settled"
    assert await api.available(b) == 0
    # A player may not resolve; an admin upholds the paid results with a reason.
    refused = await api.call(
        "POST",
        "settlement",
        f"/rounds/{round_id}/resolve",
        user=a,
        roles=["player"],
        json={"placements": [{"player_id": a, "rank": 1, "score": 1}], "reason": "mine"},
    )
    assert refused.status_code == 403
    placements = [{"player_id": a, "rank": 1, "score": 990}, {"player_id": b, "rank": 2, "score": 980}]
    await api.ok(
        "POST",
        "settlement",
        f"/rounds/{round_id}/resolve",
        user="admin-1",
        roles=["admin"],
        json={"placements": placements, "reason": "replay reviewed: original results stand"},
    )
    resolved = await wait_for(round_doc, lambda r: not r.get("disputed"))
    assert resolved["state"] == "settled"
    assert await api.available(a) == 10 * USDC
    assert await api.available(b) == 0

    async def audits() -> list[Any]:
        return [
            e for e in await events_on(kafka_bootstrap, AUDIT.name + platform.suffix) if e.correlationid == round_id
        ]

    audit = await wait_for(audits, lambda es: len(es) == 1)
    assert audit[0].data.actor_user_id == "admin-1"
    assert "original results stand" in audit[0].data.reason


async def test_pool_exhaustion_holds_the_round_until_an_admin_tops_up_and_releases(
    platform: Platform, game: GameServer, api: Api, kafka_bootstrap: str
) -> None:
    campaign, round_id = uid("camp"), uid("round")
    a, b = uid("p"), uid("p")
    await api.funded_campaign(campaign, 10 * USDC)
    await game.sponsored_round(round_id, [a, b], campaign_id=campaign, prize=50 * USDC)

    async def exhausted() -> list[Any]:
        return [
            e
            for e in await events_on(kafka_bootstrap, REWARDS_EVENTS.name + platform.suffix)
            if e.correlationid == round_id and e.data.EVENT_NAME == "PoolExhausted"
        ]

    events = await wait_for(exhausted, lambda es: len(es) == 1)
    assert events[0].data.requested == 40 * USDC  # top3 with two finishers: 50% + 30%, the rest stays pooled
    assert await api.available(a) == 0  # not partially paid
    assert await api.available(b) == 0

    await api.fund(campaign, 100 * USDC, reference=uid("topup"))
    await api.ok("POST", "rewards", f"/campaigns/{campaign}/held/release", user="sponsor", roles=["admin"], json={})
    assert await wait_for(refresh_available(api, a), lambda v: v == 25 * USDC) == 25 * USDC
    assert await api.available(b) == 15 * USDC
    await ledger_invariants(platform)
