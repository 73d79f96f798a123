"""Player top-ups on real PostgreSQL + Kafka (and the Stripe emulator): the payment webhook credits once however
often and in whatever order it arrives, refunds the wallet cannot cover become receivables, forged or unverified
events move nothing, the sandbox's checkout page and Stripe Checkout (emulated) credit through verify once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.payouts import PayoutRoute
from prizeflow_contracts.events.webhooks import PaymentEventReceived
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.topics import REWARDS_EVENTS, WEBHOOK_PROVIDER_EVENTS
from prizeflow_runtime.db import create_engine
from prizeflow_testkit import eventually
from prizeflow_testkit.events import example_payload
from prizeflow_testkit.rewards import ROUTES, Running, running_app, settings_for
from prizeflow_testkit.stripe import StripeEmulator, stripe_emulator

pytestmark = pytest.mark.integration

WEBHOOKS = "/prizeflow/webhooks"
USD_SANDBOX = PayoutRoute(asset="USD", destination_type=DestinationType.SANDBOX, provider=ProviderType.SANDBOX)


async def create(app: Running, player: str, amount: int = 10_000, key: str = "k-1") -> dict[str, Any]:
    r = await app.client.post(
        f"/wallets/{player}/top-up-sessions",
        json={"asset": "USD", "amount": amount},
        headers={**app.player(player), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def payment(top_up: dict[str, Any], status: str, n: int, **extra: Any) -> Envelope[Any]:
    data: dict[str, Any] = {
        "provider": top_up["provider"],
        "provider_event_id": f"evt_{top_up['top_up_id'][-8:]}_{n}",
        "kind": "checkout.session.completed",
        "verified": True,
        "status": status,
        "top_up_id": top_up["top_up_id"],
        "session_ref": top_up["session_ref"],
        "payment_ref": f"pi_{top_up['top_up_id'][-8:]}",
        "adjustment_ref": None,
        "amount": {"asset": "USD", "amount": top_up["amount"]},
        **extra,
    }
    source = data.pop("source", WEBHOOKS)
    return new_event(example_payload(PaymentEventReceived, **data), source=source, correlation_id=top_up["top_up_id"])


async def show(app: Running, player: str, top_up_id: str) -> dict[str, Any]:
    r = await app.client.get(f"/wallets/{player}/top-up-sessions/{top_up_id}", headers=app.player(player))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def payment_events(app: Running, outcome: str) -> float:
    r = await app.client.get("/metrics")
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith("prizeflow_rewards_payment_events_total{") and f'outcome="{outcome}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def ledger_sums(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as c:
            rows = await c.execute(
                text("SELECT asset, sum(credits_posted - debits_posted) AS s FROM ledger_accounts GROUP BY asset")
            )
            return {r.asset: int(r.s) for r in rows}
    finally:
        await engine.dispose()


async def test_payment_delivered_three_times_and_out_of_order_credits_once(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        top_up = await create(app, "p-1")
        again = await create(app, "p-1")
        assert (again["top_up_id"], again["session_ref"], again["created"]) == (
            top_up["top_up_id"],
            top_up["session_ref"],
            False,
        )
        assert (top_up["status"], top_up["provider"]) == ("created", "sandbox")
        paid = payment(top_up, "paid", 1)
        refund = payment(
            top_up,
            "refunded",
            2,
            kind="charge.refunded",
            adjustment_ref="re_1",
            amount={"asset": "USD", "amount": 4_000},
        )
        # The refund before the payment, then the payment three times (new envelope ids: the ingress's retries).
        await app.publish(
            WEBHOOK_PROVIDER_EVENTS.name, [refund, paid, payment(top_up, "paid", 1), payment(top_up, "paid", 1)]
        )
        view = await eventually(
            lambda: show(app, "p-1", top_up["top_up_id"]),
            lambda v: v["status"] == "credited" and v["adjustments"] and v["adjustments"][0]["status"] == "applied",
            timeout=60,
        )
        assert view["adjustments"][0] | {"applied_at": None} == {
            "kind": "refund",
            "adjustment_ref": "re_1",
            "amount": 4_000,
            "status": "applied",
            "debited": 4_000,
            "receivable": 0,
            "credited": 0,
            "applied_at": None,
        }
        await eventually(lambda: payment_events(app, "duplicate"), lambda n: n >= 2, timeout=30)
        assert (await app.balances("p-1"))["USD"]["balance"] == 6_000

        async def mine() -> list[Envelope[Any]]:
            # The events leave through the outbox relay: the balance above can be read before they are published.
            return [e for e in await app.events(REWARDS_EVENTS.name) if e.subject == top_up["top_up_id"]]

        events = await eventually(mine, lambda found: len(found) >= 2, timeout=30)
        assert sorted(e.type.split(".")[-2] for e in events) == ["TopUpAdjusted", "TopUpCredited"]
        assert all(e.correlationid == top_up["top_up_id"] for e in events)
        r = await app.client.get("/wallets/p-1/transactions", headers=app.player("p-1"))
        assert [(i["kind"], i["direction"], i["amount"]) for i in r.json()["items"]] == [
            ("top_up_debit", "out", 4_000),
            ("top_up_credit", "in", 10_000),
        ]
        assert set((await ledger_sums(database_url)).values()) == {0}


async def test_a_top_up_that_ended_never_moves_again_and_a_payment_after_the_end_waits_for_a_person(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    """Every final state against every late word, through Kafka: expired and failed top-ups are never credited (a
    payment for one is kept for a person, counted, no dead letter); a credited one is never un-credited by a late
    failure or expiry (stale)."""
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        expired = await create(app, "p-1", key="k-exp")
        failed = await create(app, "p-1", key="k-fail")
        credited = await create(app, "p-1", key="k-cred")
        await app.publish(
            WEBHOOK_PROVIDER_EVENTS.name,
            [
                payment(expired, "expired", 1, amount=None),
                payment(failed, "failed", 1, amount=None),
                payment(credited, "paid", 1),
            ],
        )
        for t, status in ((expired, "expired"), (failed, "failed"), (credited, "credited")):

            async def view(t: dict[str, Any] = t) -> dict[str, Any]:
                return await show(app, "p-1", t["top_up_id"])

            def reached(v: dict[str, Any], s: str = status) -> bool:
                return bool(v["status"] == s)

            await eventually(view, reached)
        late = [
            payment(expired, "paid", 2),
            payment(failed, "paid", 2),
            payment(credited, "failed", 2, amount=None),
            payment(credited, "expired", 3, amount=None),
            payment(expired, "failed", 3, amount=None),
        ]
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, late)
        await eventually(lambda: payment_events(app, "contradiction"), lambda n: n >= 2, timeout=60)
        await eventually(lambda: payment_events(app, "stale"), lambda n: n >= 3, timeout=60)
        views = [(await show(app, "p-1", t["top_up_id"]))["status"] for t in (expired, failed, credited)]
        balance = (await app.balances("p-1"))["USD"]["balance"]
        metrics = (await app.client.get("/metrics")).text.splitlines()
        listed = await app.client.get("/ledger/contradictions", headers=app.ops)
        by_player = await app.client.get("/ledger/contradictions", headers=app.player("p-1"))
        engine = create_engine(database_url)
        try:
            async with engine.connect() as c:
                kept = (
                    await c.execute(
                        text("SELECT aggregate_id, state, reported FROM final_state_contradictions ORDER BY id")
                    )
                ).all()
                letters = (await c.execute(text("SELECT count(*) FROM dead_letters"))).scalar_one()
        finally:
            await engine.dispose()
    assert views == ["expired", "failed", "credited"]
    assert balance == 10_000  # the credited one only
    assert sorted(tuple(r) for r in kept) == sorted(
        [(expired["top_up_id"], "expired", "paid"), (failed["top_up_id"], "failed", "paid")]
    )
    assert letters == 0
    assert listed.status_code == 200
    assert {(i["aggregate_id"], i["state"]) for i in listed.json()["items"]} == {
        (expired["top_up_id"], "expired"),
        (failed["top_up_id"], "failed"),
    }
    assert by_player.status_code == 403
    for state in ("expired", "failed"):
        labels = f'reported="paid",state="{state}",subject="topup"'
        assert f"prizeflow_rewards_final_state_contradictions_total{{{labels}}} 1.0" in metrics
    assert set((await ledger_sums(database_url)).values()) == {0}


async def test_refund_the_wallet_cannot_cover_is_a_receivable(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=(*ROUTES, USD_SANDBOX)) as app:
        top_up = await create(app, "p-2")
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, [payment(top_up, "paid", 1)])
        await eventually(lambda: show(app, "p-2", top_up["top_up_id"]), lambda v: v["status"] == "credited", timeout=60)
        # 7_000 of it reserved by a claim: 3_000 left to debit.
        r = await app.client.post(
            "/claims/",
            json={"asset": "USD", "amount": 7_000, "destination": {"type": "sandbox", "address": "success:x"}},
            headers=app.player("p-2"),
        )
        assert r.status_code == 201, r.text
        refund = payment(top_up, "refunded", 2, adjustment_ref="re_2", amount={"asset": "USD", "amount": 10_000})
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, [refund])
        view = await eventually(
            lambda: show(app, "p-2", top_up["top_up_id"]),
            lambda v: bool(v["adjustments"]) and v["adjustments"][0]["status"] == "applied",
            timeout=60,
        )
        assert (view["adjustments"][0]["debited"], view["adjustments"][0]["receivable"]) == (3_000, 7_000)
        r = await app.client.get("/wallets/p-2", headers=app.player("p-2"))
        wallet = r.json()
        assert wallet["receivables"] == [{"asset": "USD", "owed": 7_000}]
        [usd] = wallet["balances"]
        assert (usd["balance"], usd["reserved"], usd["available"]) == (7_000, 7_000, 0)  # never negative
        assert set((await ledger_sums(database_url)).values()) == {0}


async def test_forged_or_unverified_payment_events_are_refused_and_change_nothing(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        top_up = await create(app, "p-3")
        forged = payment(top_up, "paid", 1, source="/attacker")
        unverified = payment(top_up, "paid", 1, verified=False)
        mismatched = payment(top_up, "paid", 1, amount={"asset": "USD", "amount": 1_000_000})
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, [forged, unverified, mismatched])

        async def refusals() -> list[str]:
            r = await app.client.get("/admin/dead-letters/", params={"consumer": "rewards-payments"}, headers=app.ops)
            return sorted(i["reason"] for i in r.json()["items"])

        reasons = await eventually(refusals, lambda r: len(r) == 3, timeout=60)
        assert reasons == ["amount_mismatch", "unverified_provider_event", "unverified_provider_event"]
        assert (await show(app, "p-3", top_up["top_up_id"]))["status"] == "created"
        assert await app.balances("p-3") == {}
        # The genuine delivery of the same provider event still credits: the refused ones took no key.
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, [payment(top_up, "paid", 1)])
        await eventually(lambda: show(app, "p-3", top_up["top_up_id"]), lambda v: v["status"] == "credited", timeout=60)
        assert (await app.balances("p-3"))["USD"]["balance"] == 10_000


async def test_sandbox_checkout_page_then_verify_credits_once(
    database_url: str, kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings) as app:
        top_up = await create(app, "p-4")
        assert top_up["url"].endswith(f"/sandbox/checkout/{top_up['session_ref']}")
        r = await app.client.post(
            f"/wallets/p-4/top-up-sessions/{top_up['top_up_id']}/verify", headers=app.player("p-4")
        )
        assert r.json()["status"] == "created"  # not paid yet
        r = await app.client.post(
            f"/sandbox/checkout/{top_up['session_ref']}/complete", json={"outcome": "paid"}, headers=app.player("p-5")
        )
        assert r.status_code == 404, r.text  # another player's session
        r = await app.client.post(
            f"/sandbox/checkout/{top_up['session_ref']}/complete", json={"outcome": "paid"}, headers=app.player("p-4")
        )
        assert (r.status_code, r.json()["status"]) == (200, "credited"), r.text
        r = await app.client.post(
            f"/wallets/p-4/top-up-sessions/{top_up['top_up_id']}/verify", headers=app.player("p-4")
        )
        assert r.json()["status"] == "credited"
        assert (await app.balances("p-4"))["USD"]["balance"] == 10_000
        r = await app.client.get("/wallets/p-4/transactions", headers=app.player("p-4"))
        assert [i["kind"] for i in r.json()["items"]] == ["top_up_credit"]


async def test_http_refusals_are_problem_details(database_url: str, kafka_bootstrap: str, topic_suffix: str) -> None:
    settings = settings_for(database_url, kafka_bootstrap, topic_suffix=topic_suffix)
    async with running_app(settings, routes=()) as app:
        cases: list[tuple[str, dict[str, Any], dict[str, str], int, str]] = [
            ("p-6", {"asset": "SP", "amount": 100}, app.player("p-6"), 422, "asset_not_top_upable"),
            ("p-6", {"asset": "USD", "amount": 1}, app.player("p-6"), 422, "below_minimum"),
            ("p-7", {"asset": "USD", "amount": 1000}, app.player("p-6"), 403, "forbidden"),
            ("p-6", {"asset": "USD", "amount": 1000}, app.admin, 403, "forbidden"),
        ]
        for player, body, headers, status, code in cases:
            r = await app.client.post(f"/wallets/{player}/top-up-sessions", json=body, headers=headers)
            assert (r.status_code, r.json().get("code")) == (status, code), r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await app.client.post(
            "/wallets/p-6/top-up-sessions", json={"asset": "USD", "amount": "1000"}, headers=app.player("p-6")
        )
        assert r.status_code == 400
        top_up = await create(app, "p-6", key="k")
        r = await app.client.post(
            "/wallets/p-6/top-up-sessions",
            json={"asset": "USD", "amount": 2000},
            headers={**app.player("p-6"), "Idempotency-Key": "k"},
        )
        assert (r.status_code, r.json()["code"]) == (409, "idempotency_key_reused")
        r = await app.client.get(f"/wallets/p-7/top-up-sessions/{top_up['top_up_id']}", headers=app.ops)
        assert (r.status_code, r.json()["code"]) == (404, "top_up_not_found")
        r = await app.client.get(f"/wallets/p-6/top-up-sessions/{top_up['top_up_id']}", headers=app.ops)
        assert r.status_code == 200  # staff may read


async def test_the_database_refuses_a_second_credit_and_a_bad_adjustment(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as c:
            await c.execute(
                text(
                    "INSERT INTO top_ups (id, player_id, asset, amount, provider, status, session_ref, url, "
                    "expires_at, correlation_id) "
                    "VALUES ('tu-x', 'p', 'USD', 100, 'stripe', 'expired', 'cs_x', 'u', now(), 'c')"
                )
            )
        bad = [
            "UPDATE top_ups SET status = 'created' WHERE id = 'tu-x'",  # expired is final
            "INSERT INTO top_ups (id, player_id, asset, amount, provider, status, session_ref, url, expires_at, "
            "correlation_id) VALUES ('tu-y', 'p', 'USD', 0, 'stripe', 'created', 'cs_y', 'u', now(), 'c')",
            "INSERT INTO top_ups (id, player_id, asset, amount, provider, status, session_ref, url, expires_at, "
            "correlation_id) VALUES ('tu-z', 'p', 'USD', 1, 'stripe', 'credited', 'cs_z', 'u', now(), 'c')",
            "INSERT INTO top_up_adjustments (top_up_id, provider, kind, adjustment_ref, amount, status, "
            "provider_event_id) VALUES ('tu-x', 'sandbox', 'refund', 're', 1, 'pending', 'e')",  # another provider
            "INSERT INTO top_up_adjustments (top_up_id, provider, kind, adjustment_ref, amount, status, debited, "
            "applied_at, provider_event_id) VALUES ('tu-x', 'stripe', 'refund', 're', 10, 'applied', 5, now(), 'e')",
        ]
        for sql in bad:
            with pytest.raises(DBAPIError):
                async with engine.begin() as c:
                    await c.execute(text(sql))
        async with engine.begin() as c:
            await c.execute(
                text(
                    "INSERT INTO top_up_adjustments (top_up_id, provider, kind, adjustment_ref, amount, status, "
                    "provider_event_id) VALUES ('tu-x', 'stripe', 'refund', 're', 10, 'pending', 'e')"
                )
            )
        for sql in (
            "INSERT INTO top_up_adjustments (top_up_id, provider, kind, adjustment_ref, amount, status, "
            "provider_event_id) VALUES ('tu-x', 'stripe', 'refund', 're', 10, 'pending', 'e2')",  # once per ref
            # applied to a top-up that was never credited
            "UPDATE top_up_adjustments SET status = 'applied', debited = 10, applied_at = now() "
            "WHERE adjustment_ref = 're'",
        ):
            with pytest.raises(DBAPIError):
                async with engine.begin() as c:
                    await c.execute(text(sql))
    finally:
        await engine.dispose()


@pytest.fixture
def stripe_em(tmp_path: Path) -> Iterator[StripeEmulator]:
    with stripe_emulator(tmp_path / "stripe.log") as em:
        yield em


async def test_stripe_checkout_on_the_emulator_verify_then_webhook_credits_once(
    database_url: str, kafka_bootstrap: str, topic_suffix: str, stripe_em: StripeEmulator
) -> None:
    settings = settings_for(
        database_url,
        kafka_bootstrap,
        topic_suffix=topic_suffix,
        rewards_topup_provider="stripe",
        stripe_api_key=stripe_em.api_key,
        stripe_api_url=stripe_em.url,
    )
    async with running_app(settings, routes=()) as app, stripe_em.admin() as admin:
        # Stripe unreachable: 503, nothing recorded; the retry with the same key makes the one session.
        await admin.fault("connection_reset", method="POST", path_prefix="/v1/checkout/sessions", count=10)
        r = await app.client.post(
            "/wallets/p-8/top-up-sessions",
            json={"asset": "USD", "amount": 10_000},
            headers={**app.player("p-8"), "Idempotency-Key": "k-1"},
        )
        assert (r.status_code, r.json()["code"]) == (503, "provider_unavailable"), r.text
        await admin.clear_faults()
        top_up = await create(app, "p-8")
        assert top_up["provider"] == "stripe"
        assert top_up["session_ref"].startswith("cs_")
        assert top_up["url"].startswith(stripe_em.url)
        await create(app, "p-8")  # the same key: the same top-up, Stripe not asked again
        [request] = [q for q in await admin.requests(method="POST", path="/v1/checkout/sessions") if q["status"] == 200]
        assert request["idempotency_key"] == top_up["top_up_id"]
        params = request["params"]
        assert params["client_reference_id"] == top_up["top_up_id"]
        assert (
            params["metadata"]
            == params["payment_intent_data"]["metadata"]
            == {
                "top_up_id": top_up["top_up_id"],
                "player_id": "p-8",
                "correlation_id": top_up["top_up_id"],
            }
        )
        verify = f"/wallets/p-8/top-up-sessions/{top_up['top_up_id']}/verify"
        assert (await app.client.post(verify, headers=app.player("p-8"))).json()["status"] == "created"
        session = await admin.complete_session(top_up["session_ref"])  # the customer pays
        r = await app.client.post(verify, headers=app.player("p-8"))
        assert r.json()["status"] == "credited", r.text
        r = await app.client.post(verify, headers=app.player("p-8"))
        assert r.json()["status"] == "credited"
        # The webhook arrives afterwards, three times: nothing more moves.
        payment_ref = session.get("payment_intent") or f"pi_{top_up['top_up_id'][-8:]}"
        paid = payment(top_up, "paid", 1, payment_ref=payment_ref)
        again = payment(top_up, "paid", 1, payment_ref=payment_ref)
        await app.publish(WEBHOOK_PROVIDER_EVENTS.name, [paid, paid, again])  # the same envelope twice, then anew
        await eventually(lambda: payment_events(app, "duplicate"), lambda n: n >= 2, timeout=60)
        assert (await app.balances("p-8"))["USD"]["balance"] == 10_000
        credited = [e for e in await app.events(REWARDS_EVENTS.name) if e.type.endswith("TopUpCredited.v1")]
        assert [e.data.top_up_id for e in credited] == [top_up["top_up_id"]]
