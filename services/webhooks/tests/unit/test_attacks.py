"""Adversarial cases (issue 16 review): genuine, confirmed Stripe events that are nonetheless not about Prizeflow's
money, and must never be published as if they were.

Every player who is paid through Stripe holds a connected account, and the platform's Connect endpoint receives
the events of every connected account: a player with API access to their own account (a Standard account) can
make Stripe emit, for real, a completed checkout, a refund or a transfer whose metadata names any top-up or payout
of ours. Confirmation fetches those events back from Stripe and finds them genuine, so the ingress itself must
tell the platform's own money from a connected account's.
"""

from __future__ import annotations

from typing import Any

import pytest
from webhooks_fakes import STRIPE, STRIPE_SECRET, ingress, signed, stripe_event

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_contracts.rails.reading import IgnoredReason
from prizeflow_webhooks.application.receive import WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome

ATTACKER = "acct_1AttackerStandard"
# A checkout the attacker ran on their own account (paying themselves), naming their open Prizeflow top-up.
THEIR_SESSION = {
    "id": "cs_attacker_1",
    "object": "checkout.session",
    "client_reference_id": "tu-attacker-open",
    "payment_status": "paid",
    "status": "complete",
    "amount_total": 50_000,
    "currency": "usd",
    "payment_intent": "pi_attacker_1",
    "metadata": {"top_up_id": "tu-attacker-open", "correlation_id": "c-x"},
}


@pytest.mark.parametrize(
    ("kind", "obj", "intent"),
    [
        ("checkout.session.completed", THEIR_SESSION, None),
        ("checkout.session.async_payment_succeeded", THEIR_SESSION, None),
        # A refund of the attacker's own charge, whose payment intent's metadata names a victim's top-up.
        (
            "refund.created",
            {"id": "re_a", "amount": 900, "currency": "usd", "payment_intent": "pi_a", "status": "succeeded"},
            {"id": "pi_a", "metadata": {"top_up_id": "tu-victim"}},
        ),
        (
            "charge.dispute.funds_reinstated",
            {"id": "dp_a", "amount": 900, "currency": "usd", "payment_intent": "pi_a", "status": "won"},
            {"id": "pi_a", "metadata": {"top_up_id": "tu-victim"}},
        ),
    ],
)
async def test_a_connected_accounts_payment_events_never_credit_or_debit_a_top_up(
    kind: str, obj: dict[str, Any], intent: dict[str, Any] | None
) -> None:
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_conn_1", kind, obj, account=ATTACKER)
    stripe.events["evt_conn_1"] = event  # genuine: Stripe confirms it
    if intent is not None:
        stripe.intents[intent["id"]] = intent
    receipt = await uc(STRIPE, *signed(STRIPE_SECRET, event))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []
    assert writer.deliveries[("stripe", "evt_conn_1")].ignored_reason == IgnoredReason.CONNECTED_ACCOUNT.value


@pytest.mark.parametrize("kind", ["transfer.created", "transfer.reversed"])
async def test_a_transfer_on_a_connected_account_is_not_one_of_ours(kind: str) -> None:
    """Prizeflow's transfers are made on the platform's account; a connected account that is itself a platform
    can make and reverse its own transfers carrying our payout's key."""
    uc, writer, stripe, _ = ingress()
    transfer = {"id": "tr_evil", "amount": 10_000, "amount_reversed": 10_000, "reversed": True,
                "metadata": {"idempotency_key": "claim-victim:payout:1", "prizeflow_mode": "transfer"}}  # fmt: skip
    event = stripe_event("evt_conn_2", kind, transfer, account=ATTACKER)
    stripe.events["evt_conn_2"] = event
    receipt = await uc(STRIPE, *signed(STRIPE_SECRET, event))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []


async def test_the_platforms_own_checkout_is_still_published() -> None:
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_own", "checkout.session.completed", {**THEIR_SESSION, "id": "cs_own"})
    stripe.events["evt_own"] = event
    assert (await uc(STRIPE, *signed(STRIPE_SECRET, event))).outcome is DeliveryOutcome.ACCEPTED
    assert len(writer.outbox) == 1


@pytest.mark.parametrize(
    ("transfer", "why"),
    [
        # An operator reversed 1 of 10 000: the player keeps 9 999, so nothing came back to credit.
        ({"amount": 10_000, "amount_reversed": 1, "reversed": False, "prizeflow_mode": "transfer"}, "partial"),
        # transfer_and_payout: the reversal is the payouts service's own pull-back of a failed or cancelled
        # payout (its payout.failed/canceled decides); it is not a return of a paid payout.
        (
            {"amount": 10_000, "amount_reversed": 10_000, "reversed": True, "prizeflow_mode": "transfer_and_payout"},
            "our pull-back",
        ),
    ],
)
async def test_a_transfer_reversal_is_a_return_only_in_full_in_mode_transfer(
    transfer: dict[str, Any], why: str
) -> None:
    """docs/rails/stripe.md: `transfer.reversed` in full → returned (mode transfer). A return credits the whole payout
    back to the player's wallet (PayoutReturned.returned_amount is the payout's amount), so a `returned` for a
    partial reversal pays the player twice."""
    uc, writer, stripe, _ = ingress()
    mode = transfer.pop("prizeflow_mode")
    obj = {"id": "tr_1", **transfer, "metadata": {"idempotency_key": "claim-1:payout:1", "prizeflow_mode": mode}}
    event = stripe_event("evt_rev", "transfer.reversed", obj)
    stripe.events["evt_rev"] = event
    await uc(STRIPE, *signed(STRIPE_SECRET, event))
    for staged in writer.outbox:
        data = decode(staged.payload).data
        assert isinstance(data, ProviderEventReceived)
        assert data.status is not ProviderPayoutStatus.RETURNED, why


async def test_a_full_reversal_of_a_transfer_mode_payout_is_a_return() -> None:
    uc, writer, stripe, _ = ingress()
    obj = {"id": "tr_1", "amount": 10_000, "amount_reversed": 10_000, "reversed": True,
           "metadata": {"idempotency_key": "claim-1:payout:1", "prizeflow_mode": "transfer"}}  # fmt: skip
    event = stripe_event("evt_rev", "transfer.reversed", obj)
    stripe.events["evt_rev"] = event
    await uc(STRIPE, *signed(STRIPE_SECRET, event))
    data = decode(writer.outbox[0].payload).data
    assert isinstance(data, ProviderEventReceived)
    assert data.status is ProviderPayoutStatus.RETURNED


async def test_a_connected_accounts_payout_names_its_account_for_payouts_to_match() -> None:
    """A bank payout lives on a connected account: the event says which, so payouts moves only a payout to that
    account (another player's account paying out with our key in its metadata moves nothing)."""
    uc, writer, stripe, _ = ingress()
    obj = {"id": "po_1", "status": "paid", "metadata": {"idempotency_key": "claim-1:payout:1"}}
    event = stripe_event("evt_po", "payout.paid", obj, account="acct_1Player")
    stripe.events["evt_po"] = event
    assert (await uc(STRIPE, *signed(STRIPE_SECRET, event))).outcome is DeliveryOutcome.ACCEPTED
    data = decode(writer.outbox[0].payload).data
    assert isinstance(data, ProviderEventReceived)
    assert data.provider_account == "acct_1Player"
    assert data.status is ProviderPayoutStatus.PAID


async def test_a_payout_of_the_platforms_own_balance_is_not_one_of_ours() -> None:
    uc, writer, stripe, _ = ingress()
    obj = {"id": "po_platform", "status": "paid", "metadata": {"idempotency_key": "claim-1:payout:1"}}
    event = stripe_event("evt_pp", "payout.paid", obj)
    stripe.events["evt_pp"] = event
    receipt = await uc(STRIPE, *signed(STRIPE_SECRET, event))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []
    assert writer.deliveries[("stripe", "evt_pp")].ignored_reason == IgnoredReason.PLATFORM_PAYOUT.value


async def test_a_connected_accounts_checkout_is_its_own_even_when_stripes_copy_does_not_name_the_account() -> None:
    """The ingress normalized the event it fetched back, and read the account from that copy only. Stripe documents
    `account` on the events it *delivers* to a Connect endpoint; a copy read back through the API (under the
    `Stripe-Account` header) that does not carry it made the attacker's own checkout the platform's: published
    `paid` for the top-up its metadata names."""
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_conn_9", "checkout.session.completed", THEIR_SESSION, account=ATTACKER)
    copy = {k: v for k, v in event.items() if k != "account"}

    async def fetch_event(event_id: str, *, account: str | None) -> dict[str, Any] | None:
        return copy if (event_id, account) == ("evt_conn_9", ATTACKER) else None

    stripe.fetch_event = fetch_event  # type: ignore[method-assign]
    receipt = await uc(STRIPE, *signed(STRIPE_SECRET, event))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    assert writer.outbox == []
    assert writer.deliveries[("stripe", "evt_conn_9")].ignored_reason == IgnoredReason.CONNECTED_ACCOUNT.value


async def test_a_delivered_event_that_names_another_account_than_stripes_copy_is_refused() -> None:
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_conn_10", "checkout.session.completed", THEIR_SESSION, account=ATTACKER)

    async def fetch_event(event_id: str, *, account: str | None) -> dict[str, Any] | None:
        return {**event, "account": "acct_someone_else"}

    stripe.fetch_event = fetch_event  # type: ignore[method-assign]
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, *signed(STRIPE_SECRET, event))
    assert refused.value.code == "event_not_confirmed"
    assert writer.outbox == []
    assert writer.deliveries == {}
