"""Stripe callbacks from the Stripe emulator, through the ingress: each event is fetched back (with the
connected account's `Stripe-Account`) before it is published; a forged one and an unreachable Stripe are
refused without taking the dedup key."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.events.webhooks import PaymentEventReceived, PaymentEventStatus, ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.stripe import StripeEmulator, stripe_emulator
from prizeflow_testkit.webhooks import STRIPE_SECRET_ENV, WebhooksProcess

from .conftest import counts, published

pytestmark = pytest.mark.integration

WHSEC = "whsec_it_0123456789abcdefghij"


@pytest.fixture
def stripe_em(tmp_path: Path) -> Iterator[StripeEmulator]:
    env = {"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:1000000", "STRIPE_EMULATOR_ACCOUNTS": "acct_player1"}
    with stripe_emulator(tmp_path / "stripe.log", env=env) as em:
        yield em


@pytest.fixture
async def ingress(stripe_em: StripeEmulator, webhooks: Callable[..., WebhooksProcess]) -> WebhooksProcess:
    provider = {
        "name": "stripe",
        "type": "stripe",
        "scheme": "stripe_signature",
        "secrets": [STRIPE_SECRET_ENV],
        "confirm": {"api_base": stripe_em.url, "api_key": "STRIPE_API_KEY", "timeout_s": 5},
    }
    svc = webhooks(
        providers=[provider],
        secrets_env={STRIPE_SECRET_ENV: WHSEC, "STRIPE_API_KEY": stripe_em.api_key},
        env={"PRIZEFLOW_PROFILE": "dev"},
    )
    svc.start()
    async with stripe_em.admin() as admin:
        await admin.add_endpoint(svc.url("stripe"), WHSEC)
    return svc


async def delivered(stripe_em: StripeEmulator, event_type: str) -> list[dict[str, Any]]:
    async with stripe_em.admin() as admin:
        return await admin.wait_deliveries(lambda ds: any(d["state"] == "succeeded" for d in ds), type=event_type)


async def test_payout_and_top_up_events_are_confirmed_with_stripe_then_published(
    stripe_em: StripeEmulator, ingress: WebhooksProcess, db_url: str, kafka_bootstrap: str, topics: str
) -> None:
    meta = {"payout_id": "po-1", "idempotency_key": "claim-1:payout:1", "correlation_id": "c-claim-1"}
    client = stripe_em.client()
    transfer = client.v1.transfers.create(
        {"amount": 1500, "currency": "usd", "destination": "acct_player1", "metadata": meta},
        {"idempotency_key": "claim-1:payout:1"},
    )
    payout = client.v1.payouts.create(
        {"amount": 1500, "currency": "usd", "metadata": meta},
        {"stripe_account": "acct_player1", "idempotency_key": "claim-1:payout:1:payout"},
    )
    async with stripe_em.admin() as admin:
        await admin.settle_payout(payout.id, "paid")
    session = client.v1.checkout.sessions.create(
        {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 2500, "product_data": {"name": "Top-up"}},
                    "quantity": 1,
                }
            ],
            "success_url": "https://example.test/ok",
            "cancel_url": "https://example.test/cancel",
            "client_reference_id": "tu-1",
            "metadata": {"top_up_id": "tu-1", "correlation_id": "c-tu-1"},
            "payment_intent_data": {"metadata": {"top_up_id": "tu-1", "correlation_id": "c-tu-1"}},
        },
        {"idempotency_key": "tu-1"},
    )
    async with stripe_em.admin() as admin:
        completed = await admin.complete_session(session.id)
    intent = completed.get("payment_intent") or client.v1.checkout.sessions.retrieve(session.id).payment_intent
    client.v1.refunds.create({"payment_intent": str(intent), "amount": 1000})
    for kind in ("transfer.created", "payout.paid", "checkout.session.completed", "refund.created"):
        await delivered(stripe_em, kind)
    await eventually(lambda: counts(db_url), lambda c: c[1] == 0, timeout=30)

    by_kind = {e.data.kind: e for e in await published(kafka_bootstrap, topics)}
    created = by_kind["transfer.created"]
    assert isinstance(created.data, ProviderEventReceived)
    assert created.data.status is None
    assert created.data.provider_payout_ref == transfer.id
    assert created.correlationid == "c-claim-1"
    paid = by_kind["payout.paid"]
    assert isinstance(paid.data, ProviderEventReceived)
    assert paid.data.status is ProviderPayoutStatus.PAID
    assert paid.data.provider_payout_ref == payout.id
    assert paid.data.idempotency_key == "claim-1:payout:1"
    top_up = by_kind["checkout.session.completed"]
    assert isinstance(top_up.data, PaymentEventReceived)
    assert top_up.data.status is PaymentEventStatus.PAID
    assert (top_up.data.top_up_id, top_up.data.session_ref) == ("tu-1", session.id)
    assert top_up.data.amount is not None
    assert top_up.data.amount.amount == 2500
    refund = by_kind["refund.created"]
    assert isinstance(refund.data, PaymentEventReceived)
    assert refund.data.status is PaymentEventStatus.REFUNDED
    assert refund.data.top_up_id == "tu-1"
    assert refund.correlationid == "c-tu-1"

    rows = await fetch(db_url, "SELECT kind, confirmed FROM deliveries WHERE outcome = 'published'")
    assert {r["kind"] for r in rows} >= {
        "transfer.created",
        "payout.paid",
        "checkout.session.completed",
        "refund.created",
    }
    assert all(r["confirmed"] for r in rows)
    async with stripe_em.admin() as admin:
        lookups = await admin.requests(method="GET")
    accounts = {r.get("account") or r.get("stripe_account") for r in lookups if "/v1/events/" in r["path"]}
    assert "acct_player1" in accounts  # the Connect event was fetched under its account


async def test_a_forged_event_signed_with_a_leaked_secret_is_refused(
    stripe_em: StripeEmulator, ingress: WebhooksProcess, db_url: str
) -> None:
    forged = {
        "id": "evt_forged_1",
        "object": "event",
        "type": "payout.paid",
        "created": int(time.time()),
        "account": "acct_player1",
        "data": {
            "object": {"id": "po_forged", "object": "payout", "metadata": {"idempotency_key": "claim-9:payout:1"}}
        },
    }
    status, problem = await ingress.post("stripe", forged, secret_env=STRIPE_SECRET_ENV, stripe=True)
    assert (status, problem["code"]) == (400, "event_not_confirmed")
    assert await counts(db_url) == (0, 0)


async def test_stripe_unreachable_answers_503_and_the_redelivery_is_accepted(
    stripe_em: StripeEmulator, ingress: WebhooksProcess, db_url: str
) -> None:
    async with stripe_em.admin() as admin:
        await admin.fault("api_error", method="GET", path_prefix="/v1/events/", count=1)
        stripe_em.client().v1.transfers.create({"amount": 100, "currency": "usd", "destination": "acct_player1"})
        deliveries = await admin.wait_deliveries(
            lambda ds: any(d["state"] == "succeeded" for d in ds), type="transfer.created"
        )
    attempts = deliveries[0]["attempts"]
    assert [a["status"] for a in attempts][:2] == [503, 200]
    [row] = await fetch(db_url, "SELECT kind, confirmed FROM deliveries")
    assert row["confirmed"]
