"""The rewards service on real Kafka + PostgreSQL: rounds credit once, claims reserve → post / void."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.payouts import PayoutFailed, PayoutPaid, PayoutRequested
from prizeflow_contracts.events.settlement import RoundSettled
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS, REWARDS_EVENTS, SETTLEMENT_ROUNDS
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import STELLAR_KEY, Running, running_app, settings_for

pytestmark = pytest.mark.integration


async def fund_campaign(app: Running, campaign_id: str, amount: int) -> None:
    r = await app.client.post(
        "/campaigns/", json={"campaign_id": campaign_id, "name": "Spring cup", "asset": "USDC"}, headers=app.admin
    )
    assert r.status_code == 201, r.text
    r = await app.client.post(
        f"/campaigns/{campaign_id}/fund", json={"amount": amount, "reference": "wire-1"}, headers=app.admin
    )
    assert r.status_code == 200, r.text


def settled(round_id: str, campaign_id: str, shares: dict[str, int]) -> RoundSettled:
    allocations = [
        {"player_id": p, "rank": i + 1, "amount": a, "source": "pool"} for i, (p, a) in enumerate(shares.items())
    ]
    total = sum(shares.values())
    return example_payload(
        RoundSettled,
        round_id=round_id,
        competition_id="comp-1",
        asset="USDC",
        prize_source="sponsored",
        campaign_id=campaign_id,
        distributable=total,
        allocations=allocations,
        remainder=0,
        fees=[],
    )


async def test_round_settled_delivered_twice_credits_once(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        await fund_campaign(app, "camp-a", 10_000)
        env = new_event(settled("r-1", "camp-a", {"p-1": 600, "p-2": 400}), source="/test", correlation_id="r-1")
        # The same event twice, then the same fact re-emitted under a new event id (e.g. a settlement replay).
        again = new_event(env.data, source="/test", correlation_id="r-1")
        await app.publish(SETTLEMENT_ROUNDS.name, [env, env, again])

        async def allocated() -> list[Any]:
            return [e for e in await app.events(REWARDS_EVENTS.name) if e.type.endswith("RewardAllocated.v1")]

        events = await eventually(allocated, lambda es: len(es) >= 2, timeout=60)
        assert (await app.balances("p-1"))["USDC"]["balance"] == 600
        assert (await app.balances("p-2"))["USDC"]["balance"] == 400
        r = await app.client.get("/campaigns/camp-a", headers=app.admin)
        assert {k: r.json()[k] for k in ("funded", "paid", "reserved", "remaining")} == {
            "funded": 10_000,
            "paid": 1_000,
            "reserved": 0,
            "remaining": 9_000,
        }
        # Give the third delivery time to be consumed, then check nothing more moved.
        await app.publish(SETTLEMENT_ROUNDS.name, [env])
        await eventually(
            lambda: app.client.get("/metrics"),
            lambda r: any(
                line.startswith('prizeflow_rewards_events_duplicate_total{consumer="rewards-rounds"')
                and float(line.rsplit(" ", 1)[1]) > 0
                for line in r.text.splitlines()
            ),
            timeout=30,
        )
        events = await allocated()
        assert sorted(e.data.player_id for e in events) == ["p-1", "p-2"]
        assert all(e.correlationid == "r-1" and e.causationid == str(env.id) for e in events)
        assert (await app.balances("p-1"))["USDC"]["balance"] == 600


async def test_pool_short_round_is_held_then_released(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        await fund_campaign(app, "camp-b", 500)
        await app.publish(
            SETTLEMENT_ROUNDS.name,
            [new_event(settled("r-2", "camp-b", {"p-3": 400, "p-4": 300}), source="/test", correlation_id="r-2")],
        )

        async def exhausted() -> list[Any]:
            return [e for e in await app.events(REWARDS_EVENTS.name) if e.type.endswith("PoolExhausted.v1")]

        [ev] = await eventually(exhausted, lambda es: len(es) == 1, timeout=60)
        assert (ev.data.remaining, ev.data.requested) == (500, 700)
        assert await app.balances("p-3") == {}  # not paid in part
        r = await app.client.get("/campaigns/camp-b", headers=app.admin)
        assert (r.json()["held_rounds"], r.json()["held_amount"], r.json()["remaining"]) == (1, 700, 500)
        r = await app.client.post("/campaigns/camp-b/held/release", headers=app.admin)
        assert r.json()["released"] == []  # still short
        r = await app.client.post(
            "/campaigns/camp-b/fund", json={"amount": 1000, "reference": "top-up"}, headers=app.admin
        )
        r = await app.client.post("/campaigns/camp-b/held/release", headers=app.admin)
        assert r.json() == {"campaign_id": "camp-b", "released": ["r-2"], "still_held": 0}
        assert (await app.balances("p-3"))["USDC"]["balance"] == 400
        assert (await app.balances("p-4"))["USDC"]["balance"] == 300
        r = await app.client.get("/campaigns/camp-b", headers=app.admin)
        assert (r.json()["funded"], r.json()["paid"], r.json()["remaining"]) == (1500, 700, 800)


def payout_event(cls: type[Any], req: PayoutRequested, **extra: Any) -> Any:
    return example_payload(
        cls,
        payout_id=f"po-{req.claim_id}",
        payout_request_id=req.payout_request_id,
        claim_id=req.claim_id,
        player_id=req.player_id,
        amount=req.amount.model_dump(),
        provider="stellar",
        idempotency_key=req.idempotency_key,
        **extra,
    )


async def test_claim_is_paid_or_voided_by_payout_events(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        r = await app.client.post(
            "/wallets/p-9/top-ups",
            json={"asset": "USDC", "amount": 10_000, "provider": "stripe", "reference": "ch_1"},
            headers=app.admin,
        )
        assert r.status_code == 200, r.text
        claims = []
        for key in ("c-paid", "c-failed"):
            r = await app.client.post(
                "/claims/",
                json={
                    "asset": "USDC",
                    "amount": 3_000,
                    "destination": {"type": "stellar_account", "address": STELLAR_KEY},
                },
                headers={**app.player("p-9"), "Idempotency-Key": key},
            )
            assert r.status_code == 201, r.text
            assert r.json()["status"] == "approved"
            claims.append(r.json()["claim_id"])
        assert (await app.balances("p-9"))["USDC"] | {} == {
            "asset": "USDC",
            "balance": 10_000,
            "reserved": 6_000,
            "available": 4_000,
            "incoming_pending": 0,
        }

        async def requests() -> list[Envelope[Any]]:
            return await app.events(PAYOUT_REQUESTS.name)

        reqs = await eventually(requests, lambda es: len(es) == 2, timeout=60)
        by_claim = {e.data.claim_id: e.data for e in reqs}
        assert set(by_claim) == set(claims)
        paid = payout_event(PayoutPaid, by_claim[claims[0]], paid_at=AT)
        failed = payout_event(
            PayoutFailed,
            by_claim[claims[1]],
            attempt=3,
            code=PayoutErrorCode.INVALID_DESTINATION,
            retryable=False,
            final=True,
            detail="no such account",
            next_attempt_at=None,
            failed_at=AT,
        )
        envs = [new_event(p, source="/payouts", correlation_id=p.claim_id) for p in (paid, failed)]
        await app.publish(PAYOUT_EVENTS.name, [*envs, envs[0], envs[1]])

        async def claim_states() -> list[str]:
            return [
                str((await app.client.get(f"/claims/{c}", headers=app.player("p-9"))).json()["status"]) for c in claims
            ]

        await eventually(claim_states, lambda s: s == ["paid", "voided"], timeout=60)
        assert (await app.balances("p-9"))["USDC"] == {
            "asset": "USDC",
            "balance": 7_000,
            "reserved": 0,
            "available": 7_000,
            "incoming_pending": 0,
        }
        r = await app.client.get("/wallets/p-9/transactions", params={"limit": 2}, headers=app.player("p-9"))
        page = r.json()
        assert [i["kind"] for i in page["items"]] == ["payout_void", "payout_post"] or [
            i["kind"] for i in page["items"]
        ] == ["payout_post", "payout_void"]
        r = await app.client.get(
            "/wallets/p-9/transactions", params={"limit": 10, "cursor": page["next_cursor"]}, headers=app.player("p-9")
        )
        assert [i["kind"] for i in r.json()["items"]] == ["claim_reserve", "claim_reserve", "top_up"]
        assert r.json()["next_cursor"] is None
