"""Stripe events → Prizeflow events, row by row of the tables in `domain/stripe_events.py`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from webhooks_fakes import stripe_event

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_contracts.events.webhooks import PaymentEventReceived, PaymentEventStatus, ProviderEventReceived
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.rails import stripe_events
from prizeflow_contracts.rails.reading import IgnoredReason, NormalizationError, Normalized

DIGEST = "ab" * 32
AT = datetime(2025, 6, 1, tzinfo=UTC)
META = {"payout_id": "po-1", "idempotency_key": "claim-1:payout:1", "correlation_id": "c-claim-1"}


def normalize(event: dict[str, Any], pi: dict[str, Any] | None = None) -> Normalized:
    return stripe_events.normalize(
        event, provider=ProviderType.STRIPE, digest=DIGEST, received_at=AT, payment_intent=pi
    )


@pytest.mark.parametrize(
    ("kind", "obj_id", "status"),
    [
        ("transfer.created", "tr_1", None),
        ("transfer.reversed", "tr_1", ProviderPayoutStatus.RETURNED),  # in full, mode transfer
        ("payout.created", "po_1", None),
        ("payout.updated", "po_1", None),
        ("payout.paid", "po_1", ProviderPayoutStatus.PAID),
        ("payout.canceled", "po_1", ProviderPayoutStatus.CANCELLED),
    ],
)
def test_payout_events_carry_the_object_its_key_and_the_status_stripe_gives(
    kind: str, obj_id: str, status: ProviderPayoutStatus | None
) -> None:
    # Transfers happen on the platform's account, a connected account's payouts on that account.
    account = None if kind.startswith("transfer.") else "acct_1"
    obj = {"id": obj_id, "metadata": {**META, "prizeflow_mode": "transfer"}, "amount": 700, "reversed": True}
    got = normalize(stripe_event("evt_1", kind, obj, account=account))
    assert isinstance(got.event, ProviderEventReceived)
    assert got.event.status is status
    assert got.event.provider_payout_ref == obj_id
    assert got.event.idempotency_key == "claim-1:payout:1"
    assert got.event.provider_event_id == "evt_1"
    assert got.event.kind == kind
    assert got.event.verified
    assert got.event.payload_digest == DIGEST
    assert got.correlation_id == "c-claim-1"


def test_a_paid_payout_carries_no_fee_as_the_rails_status_records_it() -> None:
    """Issue 56: Stripe charges the platform nothing for a connected account's payout; the paid event says 0 in its
    asset, as the status sync would, so either answer leaves the same books. A currency not ours says nothing."""
    obj = {"id": "po_1", "metadata": META, "amount": 700, "currency": "usd"}
    paid = normalize(stripe_event("evt_1", "payout.paid", obj, account="acct_1")).event
    assert isinstance(paid, ProviderEventReceived)
    assert paid.fee is not None
    assert (paid.fee.amount, paid.fee.asset) == (0, "USD")
    other = normalize(stripe_event("evt_2", "payout.paid", obj | {"currency": "xxx"}, account="acct_1")).event
    assert isinstance(other, ProviderEventReceived)
    assert other.fee is None


@pytest.mark.parametrize(
    ("failure_code", "code"),
    [
        ("account_closed", PayoutErrorCode.ACCOUNT_CLOSED),
        ("no_account", PayoutErrorCode.DESTINATION_NOT_FOUND),
        ("invalid_account_number", PayoutErrorCode.INVALID_DESTINATION),
        ("account_frozen", PayoutErrorCode.DESTINATION_BLOCKED),
        ("insufficient_funds", PayoutErrorCode.INSUFFICIENT_PROVIDER_FUNDS),
        ("invalid_currency", PayoutErrorCode.UNSUPPORTED_ASSET),
        ("could_not_process", PayoutErrorCode.TX_FAILED),
        (None, PayoutErrorCode.TX_FAILED),
    ],
)
def test_a_failed_payout_maps_stripes_failure_code(failure_code: str | None, code: PayoutErrorCode) -> None:
    obj = {"id": "po_1", "failure_code": failure_code}
    got = normalize(stripe_event("evt_2", "payout.failed", obj, account="acct_1"))
    assert isinstance(got.event, ProviderEventReceived)
    assert got.event.status is ProviderPayoutStatus.FAILED
    assert got.event.error_code is code
    assert got.correlation_id is None  # no metadata: the caller generates one


SESSION = {
    "id": "cs_1",
    "object": "checkout.session",
    "client_reference_id": "tu-1",
    "metadata": {"top_up_id": "tu-1", "correlation_id": "c-tu-1"},
    "amount_total": 1500,
    "currency": "usd",
    "payment_intent": "pi_1",
    "payment_status": "paid",
}


@pytest.mark.parametrize(
    ("kind", "fields", "status"),
    [
        ("checkout.session.completed", {}, PaymentEventStatus.PAID),
        ("checkout.session.async_payment_succeeded", {}, PaymentEventStatus.PAID),
        ("checkout.session.async_payment_failed", {"payment_status": "unpaid"}, PaymentEventStatus.FAILED),
        ("checkout.session.expired", {"payment_intent": None, "payment_status": "unpaid"}, PaymentEventStatus.EXPIRED),
    ],
)
def test_checkout_sessions_become_payment_events(kind: str, fields: dict[str, Any], status: PaymentEventStatus) -> None:
    got = normalize(stripe_event("evt_3", kind, {**SESSION, **fields}))
    assert isinstance(got.event, PaymentEventReceived)
    assert got.event.status is status
    assert (got.event.top_up_id, got.event.session_ref) == ("tu-1", "cs_1")
    assert got.event.payment_ref == (None if "payment_intent" in fields else "pi_1")
    assert got.event.amount == (Money(asset="USD", amount=1500) if status is PaymentEventStatus.PAID else None)
    assert got.correlation_id == "c-tu-1"


def test_the_top_up_id_falls_back_to_metadata() -> None:
    got = normalize(stripe_event("evt_4", "checkout.session.completed", {**SESSION, "client_reference_id": None}))
    assert isinstance(got.event, PaymentEventReceived)
    assert got.event.top_up_id == "tu-1"


@pytest.mark.parametrize(
    ("payment_status", "reason"),
    [("unpaid", IgnoredReason.PAYMENT_PENDING), ("no_payment_required", IgnoredReason.NO_PAYMENT)],
)
def test_a_completed_checkout_without_the_money_is_ignored(payment_status: str, reason: IgnoredReason) -> None:
    got = normalize(stripe_event("evt_5", "checkout.session.completed", {**SESSION, "payment_status": payment_status}))
    assert got.event is None
    assert got.ignored is reason


PI = {"id": "pi_1", "object": "payment_intent", "metadata": {"top_up_id": "tu-9", "correlation_id": "c-tu-9"}}


@pytest.mark.parametrize(
    ("kind", "obj", "status"),
    [
        ("refund.created", {"id": "re_1", "status": "succeeded"}, PaymentEventStatus.REFUNDED),
        ("refund.created", {"id": "re_1", "status": "pending"}, PaymentEventStatus.REFUNDED),
        ("refund.updated", {"id": "re_1", "status": "succeeded"}, PaymentEventStatus.REFUNDED),
        ("charge.dispute.funds_withdrawn", {"id": "dp_1", "status": "needs_response"}, PaymentEventStatus.DISPUTED),
        ("charge.dispute.funds_reinstated", {"id": "dp_1", "status": "won"}, PaymentEventStatus.DISPUTE_WON),
    ],
)
def test_refunds_and_disputes_name_the_adjustment_and_read_the_payment_intents_metadata(
    kind: str, obj: dict[str, Any], status: PaymentEventStatus
) -> None:
    event = stripe_event("evt_6", kind, {**obj, "amount": 700, "currency": "usd", "payment_intent": "pi_1"})
    assert stripe_events.payment_intent_of(event) == "pi_1"
    got = normalize(event, PI)
    assert isinstance(got.event, PaymentEventReceived)
    assert got.event.status is status
    assert (got.event.adjustment_ref, got.event.payment_ref, got.event.top_up_id) == (obj["id"], "pi_1", "tu-9")
    assert got.event.amount == Money(asset="USD", amount=700)
    assert got.correlation_id == "c-tu-9"


def test_a_refund_that_does_not_proceed_is_ignored() -> None:
    obj = {"id": "re_1", "status": "requires_action", "amount": 700, "currency": "usd", "payment_intent": "pi_1"}
    got = normalize(stripe_event("evt_7", "refund.created", obj), PI)
    assert got.event is None
    assert got.ignored is IgnoredReason.REFUND_NOT_PROCEEDING


def test_a_refund_created_awaiting_action_is_debited_once_it_proceeds() -> None:
    """Stripe creates some refunds `requires_action` and says they proceed only with `refund.updated`: ignoring the
    update left the wallet credited with money the platform had paid back (the player kept both). Both events name
    the same refund id, so rewards records one adjustment whichever it sees first."""
    obj = {"id": "re_2", "amount": 700, "currency": "usd", "payment_intent": "pi_1"}
    created = normalize(stripe_event("evt_20", "refund.created", {**obj, "status": "requires_action"}), PI)
    proceeds = normalize(stripe_event("evt_21", "refund.updated", {**obj, "status": "succeeded"}), PI)
    fails = normalize(stripe_event("evt_22", "refund.updated", {**obj, "status": "canceled"}), PI)
    assert created.event is None
    assert created.ignored is IgnoredReason.REFUND_NOT_PROCEEDING
    assert isinstance(proceeds.event, PaymentEventReceived)
    assert (proceeds.event.status, proceeds.event.adjustment_ref) == (PaymentEventStatus.REFUNDED, "re_2")
    assert proceeds.event.amount == Money(asset="USD", amount=700)
    # cancelled after it proceeded: rewards gives back what refund re_2 took (nothing, if it never took any)
    assert isinstance(fails.event, PaymentEventReceived)
    assert (fails.event.status, fails.event.adjustment_ref) == (PaymentEventStatus.REFUND_FAILED, "re_2")


def test_a_refund_that_fails_after_it_was_debited_gives_the_money_back() -> None:
    obj = {"id": "re_3", "amount": 700, "currency": "usd", "payment_intent": "pi_1"}
    debited = normalize(stripe_event("evt_30", "refund.created", {**obj, "status": "pending"}), PI)
    assert isinstance(debited.event, PaymentEventReceived)
    failed = normalize(stripe_event("evt_31", "refund.failed", {**obj, "status": "failed"}), PI)
    assert isinstance(failed.event, PaymentEventReceived)  # something rewards can undo re_3 with
    assert (failed.event.status, failed.event.adjustment_ref) == (PaymentEventStatus.REFUND_FAILED, "re_3")
    assert failed.event.amount == Money(asset="USD", amount=700)
    # the same refund's update saying so is the same reversal (rewards keys it by kind and refund id)
    updated = normalize(stripe_event("evt_32", "refund.updated", {**obj, "status": "failed"}), PI)
    assert isinstance(updated.event, PaymentEventReceived)
    assert (updated.event.status, updated.event.adjustment_ref) == (PaymentEventStatus.REFUND_FAILED, "re_3")


@pytest.mark.parametrize(
    "kind", ["charge.refunded", "charge.dispute.created", "customer.created", "payout.reconciliation_completed"]
)
def test_other_kinds_are_ignored(kind: str) -> None:
    got = normalize(stripe_event("evt_8", kind, {"id": "x_1", "payment_intent": "pi_1"}))
    assert got.event is None
    assert got.ignored is IgnoredReason.KIND_NOT_HANDLED
    assert stripe_events.payment_intent_of(stripe_event("evt_8", kind, {"id": "x_1"})) is None


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_9", "type": "payout.paid"},  # not an event object
        stripe_event("evt_9", "payout.paid", {"id": "po_1"}, account="acct_1") | {"data": {}},
        stripe_event("evt_9", "checkout.session.completed", {**SESSION, "currency": "eur"}),
        stripe_event("evt_9", "checkout.session.completed", {**SESSION, "amount_total": 0}),
        stripe_event("evt_9", "checkout.session.completed", {**SESSION, "amount_total": "1500"}),
        stripe_event(
            "evt_9", "payout.paid", {"id": "po_1", "metadata": {"idempotency_key": "has spaces"}}, account="acct_1"
        ),
        stripe_event(
            "evt_9", "checkout.session.completed", {"id": "cs_1", "payment_status": "paid", "currency": "usd"}
        ),
    ],
)
def test_a_handled_kind_that_cannot_be_read_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize(event)


@pytest.mark.parametrize("given", ["a b", "c-1\n", "=1+2"])
def test_a_correlation_id_that_breaks_the_pattern_is_not_taken(given: str) -> None:
    got = normalize(
        stripe_event("evt_10", "payout.paid", {"id": "po_1", "metadata": {"correlation_id": given}}, account="acct_1")
    )
    assert got.correlation_id is None


def test_every_stripe_currency_of_the_registry_is_read() -> None:
    assert stripe_events.CURRENCIES == {"usd": "USD", "inr": "INR"}
