"""Rewards attacked through its boundaries (HTTP and Kafka, real PostgreSQL): money moves only on settlement's
and payouts' decisions, a reservation is never stranded, one claim is settled by one payout, input is strict."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.payouts import (
    PayoutCancelled,
    PayoutCreated,
    PayoutFailed,
    PayoutPaid,
    PayoutRequested,
    PayoutRequestRefused,
    PayoutRoute,
)
from prizeflow_contracts.events.settlement import EntryAccepted, RoundSettled, RoundVoided
from prizeflow_contracts.money import INT64_MAX
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.topics import PAYOUT_EVENTS, PAYOUT_REQUESTS, SETTLEMENT_ROUNDS
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import eventually
from prizeflow_testkit.events import AT, example_payload
from prizeflow_testkit.rewards import ROUTES, STELLAR_KEY, Running, routes_event, running_app, settings_for

pytestmark = pytest.mark.integration

DEST = {"type": "stellar_account", "address": STELLAR_KEY}


async def sql(database_url: str, query: str, **params: Any) -> list[Any]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(await conn.execute(text(query), params))
    finally:
        await engine.dispose()


async def top_up(app: Running, player: str, amount: int, ref: str, asset: str = "USDC") -> None:
    r = await app.client.post(
        f"/wallets/{player}/top-ups",
        json={"asset": asset, "amount": amount, "provider": "stripe", "reference": ref},
        headers=app.admin,
    )
    assert r.status_code == 200, r.text


def round_event(round_id: str, payload: EventPayload) -> Envelope[Any]:
    return new_event(payload, source="/prizeflow/settlement", correlation_id=round_id)


def accepted(round_id: str, entry_id: str, player: str, fee: int) -> Envelope[Any]:
    return round_event(
        round_id,
        EntryAccepted(
            round_id=round_id,
            entry_id=entry_id,
            player_id=player,
            fee={"asset": "USDC", "amount": fee},
            paid_via="wallet",
            accepted_at=AT,
        ),
    )


async def dead_letters(database_url: str) -> list[tuple[str, str]]:
    rows = await sql(database_url, "SELECT event_type, reason FROM dead_letters ORDER BY id")
    return [(str(r.event_type).split(".")[-2], str(r.reason)) for r in rows]


async def consumed(app: Running, n: int) -> None:
    """Wait until the rounds and payouts consumers have settled `n` records (applied or dead-lettered).
    Redeliveries (`duplicate`, after a rebalance or a retried poll) are not new records and do not count."""

    async def total() -> float:
        metrics = (await app.client.get("/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("prizeflow_rewards_events_consumed_total{") and 'outcome="duplicate"' not in line
        )

    await eventually(total, lambda t: t >= n, timeout=60)


async def test_an_entry_fee_is_charged_only_on_settlements_decision_and_a_round_pays_out_only_what_it_took(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "rich", 1_000, "t-1")  # "poor" has nothing
        pot_round = example_payload(
            RoundSettled,
            round_id="r-pot",
            asset="USDC",
            prize_source="entry_pot",
            campaign_id=None,
            distributable=400,
            allocations=[{"player_id": "rich", "rank": 1, "amount": 400, "source": "pot"}],
            remainder=0,
            fees=[],
        )
        await app.publish(
            SETTLEMENT_ROUNDS.name,
            [
                accepted("r-pot", "e-1", "rich", 200),
                accepted("r-pot", "e-2", "poor", 200),  # the wallet cannot cover it: refused, nothing charged
                round_event("r-pot", pot_round),  # pays 400 from a round whose entries paid in 200: refused
            ],
        )
        await consumed(app, 4)  # the routes announcement running_app waited for counts too
        assert await dead_letters(database_url) == [
            ("EntryAccepted", "insufficient_funds"),
            ("RoundSettled", "conflicting_event"),
        ]
        assert (await app.balances("rich"))["USDC"]["balance"] == 800
        assert (await app.balances("poor")).get("USDC", {}).get("balance", 0) == 0

        # A voided round refunds only what was charged; the uncharged entry gets nothing back.
        voided = RoundVoided(
            round_id="r-void",
            reason="server crashed",
            refunds=[
                {
                    "player_id": "rich",
                    "entry_id": "v-1",
                    "amount": {"asset": "USDC", "amount": 100},
                    "paid_via": "wallet",
                },
                {
                    "player_id": "poor",
                    "entry_id": "v-2",
                    "amount": {"asset": "USDC", "amount": 100},
                    "paid_via": "wallet",
                },
            ],
            voided_at=AT,
        )
        await app.publish(
            SETTLEMENT_ROUNDS.name,
            [
                accepted("r-void", "v-1", "rich", 100),
                accepted("r-void", "v-2", "poor", 100),
                round_event("r-void", voided),
                accepted("r-void", "v-3", "rich", 100),  # after the void (a late redrive): never charged
            ],
        )
        await consumed(app, 8)
        assert (await app.balances("rich"))["USDC"]["balance"] == 800
        assert (await app.balances("poor")).get("USDC", {}).get("balance", 0) == 0
        letters = await dead_letters(database_url)
        assert letters[2:] == [("EntryAccepted", "insufficient_funds"), ("EntryAccepted", "illegal_transition")]
        escrow = await sql(
            database_url,
            "SELECT owner_id, credits_posted - debits_posted AS held FROM ledger_accounts "
            "WHERE kind = 'entry_escrow' ORDER BY owner_id",
        )
        assert [(r.owner_id, r.held) for r in escrow] == [("r-pot", 200), ("r-void", 0)]


async def test_claims_to_a_destination_no_provider_pays_are_refused_and_reserve_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "p-1", 10_000, "t-1")
        refused = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 1_000, "destination": {"type": "ton_wallet", "address": "EQabc"}},
            headers=app.player("p-1"),
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "no_payout_route"
        assert (await app.balances("p-1"))["USDC"]["reserved"] == 0
        assert await sql(database_url, "SELECT id FROM claims") == []
        # An older announcement never replaces a newer one.
        await app.announce_routes(sequence=5)
        await app.publish(PAYOUT_EVENTS.name, [routes_event((), sequence=4)])
        await consumed(app, 3)
        known = (await app.client.get("/payout-routes/", headers=app.admin)).json()["routes"]
        assert len(known) == 3


async def test_a_route_of_fixed_amounts_refuses_claims_of_other_amounts_and_reserves_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Telegram pays Stars only as gifts of listed prices (PayoutRoute.amounts): any other amount is refused here."""
    gifts = PayoutRoute(
        asset="XTR",
        destination_type=DestinationType.TELEGRAM_USER,
        provider=ProviderType.TELEGRAM_IF_SUPPORTED,
        amounts=(15, 25),
    )
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await app.announce_routes([*ROUTES, gifts], sequence=2)
        await top_up(app, "p-1", 100, "t-1", asset="XTR")
        dest = {"type": "telegram_user", "address": "4242"}
        refused = await app.client.post(
            "/claims/", json={"asset": "XTR", "amount": 16, "destination": dest}, headers=app.player("p-1")
        )
        assert refused.status_code == 422
        assert refused.json()["code"] == "no_payout_route"
        assert (await app.balances("p-1"))["XTR"]["reserved"] == 0
        made = await app.client.post(
            "/claims/", json={"asset": "XTR", "amount": 15, "destination": dest}, headers=app.player("p-1")
        )
        assert made.status_code == 201, made.text
        assert (await app.balances("p-1"))["XTR"]["reserved"] == 15
        known = (await app.client.get("/payout-routes/", headers=app.admin)).json()["routes"]
        assert [r["amounts"] for r in known if r["asset"] == "XTR"] == [[15, 25]]


async def test_an_idempotency_key_reused_for_another_destination_is_a_conflict(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "p-1", 10_000, "t-1")
        headers = {**app.player("p-1"), "Idempotency-Key": "k-1"}
        first = await app.client.post(
            "/claims/", json={"asset": "USDC", "amount": 1_000, "destination": DEST}, headers=headers
        )
        assert first.status_code == 201, first.text
        same = await app.client.post(
            "/claims/", json={"asset": "USDC", "amount": 1_000, "destination": DEST}, headers=headers
        )
        assert (same.status_code, same.json()["created"]) == (201, False)
        elsewhere = await app.client.post(
            "/claims/",
            json={"asset": "USDC", "amount": 1_000, "destination": {"type": "sandbox", "address": "success:x"}},
            headers=headers,
        )
        assert elsewhere.status_code == 409
        assert elsewhere.json()["code"] == "idempotency_key_reused"
        assert (await app.balances("p-1"))["USDC"]["reserved"] == 1_000


def payout_event(cls: type[Any], req: PayoutRequested, payout_id: str, **extra: Any) -> Any:
    return new_event(
        example_payload(
            cls,
            payout_id=payout_id,
            payout_request_id=req.payout_request_id,
            claim_id=req.claim_id,
            player_id=req.player_id,
            amount=req.amount.model_dump(),
            provider="stellar",
            idempotency_key=req.idempotency_key,
            **extra,
        ),
        source="/prizeflow/payouts",
        correlation_id=req.claim_id,
    )


async def test_one_claim_is_settled_by_one_payout_and_a_refused_request_voids_its_reservation(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "p-1", 10_000, "t-1")
        claims = []
        for key in ("a", "b"):
            r = await app.client.post(
                "/claims/",
                json={"asset": "USDC", "amount": 3_000, "destination": DEST},
                headers={**app.player("p-1"), "Idempotency-Key": key},
            )
            assert r.status_code == 201, r.text
            claims.append(r.json()["claim_id"])
        requests = await eventually(lambda: app.events(PAYOUT_REQUESTS.name), lambda es: len(es) == 2, timeout=60)
        by_claim = {e.data.claim_id: e.data for e in requests}
        paid_req, refused_req = by_claim[claims[0]], by_claim[claims[1]]
        await app.publish(
            PAYOUT_EVENTS.name,
            [
                payout_event(PayoutCreated, paid_req, "po-1", destination=DEST, approval_policy="auto", created_at=AT),
                payout_event(PayoutPaid, paid_req, "po-1", paid_at=AT),
                # A second payout for the paid claim (a forged request, an operator's double): refused.
                payout_event(PayoutPaid, paid_req, "po-2", paid_at=AT),
                new_event(
                    PayoutRequestRefused(
                        payout_request_id=refused_req.payout_request_id,
                        claim_id=refused_req.claim_id,
                        code="no_provider_route",
                        detail="nobody pays that",
                        refused_at=AT,
                    ),
                    source="/prizeflow/payouts",
                    correlation_id=refused_req.claim_id,
                ),
            ],
        )
        await consumed(app, 5)
        statuses = [(await app.client.get(f"/claims/{c}", headers=app.player("p-1"))).json()["status"] for c in claims]
        assert statuses == ["paid", "voided"]
        assert (await app.balances("p-1"))["USDC"] == {
            "asset": "USDC",
            "balance": 7_000,
            "reserved": 0,
            "available": 7_000,
            "incoming_pending": 0,
        }
        assert await dead_letters(database_url) == [("PayoutPaid", "duplicate_payout")]
        metrics = (await app.client.get("/metrics")).text
        dead = [  # every (consumer, topic, reason) is exported from start-up: the ones that counted something
            line
            for line in metrics.splitlines()
            if line.startswith("prizeflow_rewards_events_dead_lettered_total") and not line.endswith(" 0.0")
        ]
        assert dead == [
            'prizeflow_rewards_events_dead_lettered_total{consumer="rewards-payouts",reason="duplicate_payout",'
            f'topic="{app.topic(PAYOUT_EVENTS.name)}"}} 1.0'
        ]


async def test_a_late_payout_outcome_against_a_final_claim_is_kept_for_a_person_and_moves_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Payouts never moves a payout out of a final state any more, but a late or replayed outcome may still reach
    rewards. A final failure gave the reservation back to the wallet: a `paid` for it would mean the player holds
    the amount twice. A paid claim: a failure, cancel or rejection after it would give the reservation back a second
    time. Each such word is kept once for a person (`final_state_contradictions`, the counter and the alert), moves
    nothing and is no dead letter (a redrive could only be refused again); a cancel after the void is a no-op."""
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "p-1", 10_000, "t-1")
        claims = []
        for key in ("late-void", "late-paid"):
            r = await app.client.post(
                "/claims/",
                json={"asset": "USDC", "amount": 3_000, "destination": DEST},
                headers={**app.player("p-1"), "Idempotency-Key": key},
            )
            assert r.status_code == 201, r.text
            claims.append(r.json()["claim_id"])
        reqs = await eventually(lambda: app.events(PAYOUT_REQUESTS.name), lambda es: len(es) == 2, timeout=60)
        voided, paid = sorted((e.data for e in reqs), key=lambda d: claims.index(d.claim_id))
        final = {"attempt": 1, "code": "invalid_destination", "retryable": False, "final": True, "detail": "gone"}
        late_paid = payout_event(PayoutPaid, voided, "po-1", paid_at=AT)  # the provider's word after the end
        await app.publish(
            PAYOUT_EVENTS.name,
            [
                payout_event(PayoutFailed, voided, "po-1", **final, next_attempt_at=None, failed_at=AT),
                payout_event(PayoutCancelled, voided, "po-1", cancelled_by="ada", reason="r", cancelled_at=AT),
                late_paid,
                late_paid,  # redelivered
                payout_event(PayoutPaid, paid, "po-2", paid_at=AT),
                payout_event(PayoutFailed, paid, "po-2", **final, next_attempt_at=None, failed_at=AT),
                payout_event(PayoutCancelled, paid, "po-2", cancelled_by="ada", reason="r", cancelled_at=AT),
            ],
        )
        await consumed(app, 7)  # six distinct payout events and the routes announcement running_app waited for
        statuses = [(await app.client.get(f"/claims/{c}", headers=app.player("p-1"))).json()["status"] for c in claims]
        balances = (await app.balances("p-1"))["USDC"]
        kept = await sql(
            database_url,
            "SELECT subject, aggregate_id, state, reported FROM final_state_contradictions ORDER BY id",
        )
        metrics = (await app.client.get("/metrics")).text.splitlines()
        letters = await dead_letters(database_url)
    assert statuses == ["voided", "paid"]
    # 10,000 topped up, 3,000 paid out by the paid claim; the voided claim's 3,000 back once, never taken again.
    assert balances == {"asset": "USDC", "balance": 7_000, "reserved": 0, "available": 7_000, "incoming_pending": 0}
    assert sorted(tuple(r) for r in kept) == sorted(  # two claims, two partitions: in no order between them
        [
            ("claim", claims[0], "voided", "paid"),
            ("claim", claims[1], "paid", "failed"),
            ("claim", claims[1], "paid", "cancelled"),
        ]
    )
    assert letters == []
    for state, reported in (("voided", "paid"), ("paid", "failed"), ("paid", "cancelled")):
        labels = f'reported="{reported}",state="{state}",subject="claim"'
        assert f"prizeflow_rewards_final_state_contradictions_total{{{labels}}} 1.0" in metrics


@pytest.mark.parametrize(
    "body",
    [
        {"asset": "USDC", "amount": "1000", "destination": DEST},
        {"asset": "USDC", "amount": 1000.0, "destination": DEST},
        {"asset": "USDC", "amount": True, "destination": DEST},
    ],
)
async def test_money_sent_as_anything_but_an_integer_is_refused(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, body: dict[str, Any]
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        await top_up(app, "p-1", 10_000, "t-1")
        r = await app.client.post("/claims/", json=body, headers=app.player("p-1"))
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        fund = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USDC", "amount": "500", "provider": "stripe", "reference": "t-2"},
            headers=app.admin,
        )
        assert fund.status_code == 400
        assert (await app.balances("p-1"))["USDC"]["balance"] == 10_000


async def test_a_counter_past_int64_is_refused_with_a_problem_and_changes_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    async with running_app(settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)) as app:
        created = await app.client.post(
            "/campaigns/", json={"campaign_id": "big", "name": "Big", "asset": "USDC"}, headers=app.admin
        )
        assert created.status_code == 201
        full = await app.client.post(
            "/campaigns/big/fund", json={"amount": INT64_MAX, "reference": "w-1"}, headers=app.admin
        )
        assert full.status_code == 200, full.text
        over = await app.client.post("/campaigns/big/fund", json={"amount": 1, "reference": "w-2"}, headers=app.admin)
        assert over.status_code == 422, over.text
        assert over.json()["code"] == "amount_out_of_range"
        assert (await app.client.get("/campaigns/big", headers=app.admin)).json()["funded"] == INT64_MAX
        top = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USDC", "amount": INT64_MAX, "provider": "stripe", "reference": "a"},
            headers=app.admin,
        )
        assert top.status_code == 200
        again = await app.client.post(
            "/wallets/p-1/top-ups",
            json={"asset": "USDC", "amount": 5, "provider": "stripe", "reference": "b"},
            headers=app.admin,
        )
        assert again.status_code == 422, again.text
        assert (await app.balances("p-1"))["USDC"]["balance"] == INT64_MAX
