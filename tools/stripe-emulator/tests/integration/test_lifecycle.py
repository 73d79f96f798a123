"""What only Stripe or a customer does, driven through the admin API and observed through the official library:
asynchronous payments, disputes, payout settlement and bank returns, restricted accounts."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from prizeflow_testkit.stripe import StripeAdmin, StripeAdminError

pytestmark = pytest.mark.integration


def new_session(client: stripe.StripeClient, amount: int = 4000) -> Any:
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {"price_data": {"currency": "eur", "unit_amount": amount, "product_data": {"name": "Top-up"}},
                 "quantity": 1}
            ],
            "success_url": "http://127.0.0.1/ok",
            "payment_intent_data": {"metadata": {"top_up_id": "tu-life"}},
        }
    )  # fmt: skip


def event_types(client: stripe.StripeClient, account: str | None = None) -> list[str]:
    options: stripe.RequestOptions = {"stripe_account": account} if account else {}
    return [e.type for e in reversed(client.v1.events.list(params={"limit": 100}, options=options).data)]


@pytest.mark.parametrize("succeeded", [True, False])
async def test_an_async_payment(admin: StripeAdmin, client: stripe.StripeClient, succeeded: bool) -> None:
    session = new_session(client)
    await admin.complete_session(session.id, "async")
    pending = client.v1.checkout.sessions.retrieve(session.id)
    assert (pending.status, pending.payment_status) == ("complete", "unpaid")
    assert client.v1.payment_intents.retrieve(str(pending.payment_intent)).status == "processing"
    await admin.async_result(session.id, succeeded=succeeded)
    after = client.v1.checkout.sessions.retrieve(session.id)
    assert after.payment_status == ("paid" if succeeded else "unpaid")
    last = "checkout.session.async_payment_succeeded" if succeeded else "checkout.session.async_payment_failed"
    assert event_types(client)[-1] == last
    assert await admin.balance() == ({"eur": 4000} if succeeded else {})


@pytest.mark.parametrize("won", [True, False])
async def test_a_dispute(admin: StripeAdmin, client: stripe.StripeClient, won: bool) -> None:
    session = new_session(client)
    await admin.complete_session(session.id, "paid")
    payment_intent = str(client.v1.checkout.sessions.retrieve(session.id).payment_intent)
    dispute = await admin.open_dispute(payment_intent, amount=1500)
    assert await admin.balance() == {"eur": 2500}
    with pytest.raises(stripe.InvalidRequestError) as disputed:
        client.v1.refunds.create(params={"payment_intent": payment_intent})
    assert disputed.value.code == "charge_disputed"
    await admin.close_dispute(dispute["id"], won=won)
    closed = client.v1.disputes.retrieve(dispute["id"])
    assert (closed.status, closed.payment_intent, closed.amount) == ("won" if won else "lost", payment_intent, 1500)
    expected = ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    expected += ["charge.dispute.funds_reinstated", "charge.dispute.closed"] if won else ["charge.dispute.closed"]
    assert event_types(client)[-len(expected) :] == expected
    assert await admin.balance() == {"eur": 4000 if won else 2500}


async def test_a_payout_in_transit_paid_then_returned(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    await admin.create_account("acct_life", balance={"eur": 800})
    connect: stripe.RequestOptions = {"stripe_account": "acct_life"}
    payout = client.v1.payouts.create(params={"amount": 800, "currency": "eur"}, options=connect)
    await admin.settle_payout(payout.id, "in_transit")
    await admin.settle_payout(payout.id, "paid")
    assert client.v1.payouts.retrieve(payout.id, options=connect).status == "paid"
    await admin.settle_payout(payout.id, "failed", "account_closed")
    returned = client.v1.payouts.retrieve(payout.id, options=connect)
    assert (returned.status, returned.failure_code) == ("failed", "account_closed")
    assert event_types(client, "acct_life") == [
        "payout.created", "payout.updated", "payout.paid", "payout.failed"
    ]  # fmt: skip
    assert await admin.balance("acct_life") == {"eur": 800}
    with pytest.raises(StripeAdminError, match="cannot go from failed"):
        await admin.settle_payout(payout.id, "paid")


async def test_a_restricted_account(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    await admin.create_account("acct_restricted", balance={"eur": 100})
    await admin.fund("eur", 100)
    await admin.restrict_account("acct_restricted", payouts_enabled=False, transfers="inactive")
    with pytest.raises(stripe.InvalidRequestError) as transfer:
        client.v1.transfers.create(params={"amount": 1, "currency": "eur", "destination": "acct_restricted"})
    assert transfer.value.code == "insufficient_capabilities_for_transfer"
    with pytest.raises(stripe.InvalidRequestError) as payout:
        client.v1.payouts.create(params={"amount": 1, "currency": "eur"}, options={"stripe_account": "acct_restricted"})
    assert payout.value.code == "payouts_not_allowed"
