"""`ReceiveWebhook` on fakes: signature first, then JSON, confirmation, normalization, one store per event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from webhooks_fakes import (
    NOW,
    SANDBOX,
    SANDBOX_SECRET,
    STRIPE,
    STRIPE_SECRET,
    STRIPE_UNCONFIRMED,
    FakeConfirmer,
    FakeWriter,
    ingress,
    metric,
    metrics,
    sandbox_payout,
    signed,
    stripe_event,
)

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_contracts.webhook_signatures import compute_signature
from prizeflow_runtime.errors import ErrorKind
from prizeflow_webhooks.application.receive import ReceiveWebhook, WebhookRefusedError
from prizeflow_webhooks.domain.deliveries import DeliveryOutcome, IngressProvider, RefusalReason


async def test_an_accepted_delivery_is_stored_with_its_body_and_its_event_staged_once() -> None:
    uc, writer, _, m = ingress()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    receipt = await uc(SANDBOX, signature, body)
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    assert receipt.provider_event_id == "sbx-evt-1"
    stored = writer.deliveries[("sandbox", "sbx-evt-1")]
    assert stored.body == body
    assert stored.signature_timestamp == int(NOW)
    assert stored.outcome == "published"
    assert not stored.confirmed
    assert stored.correlation_id == "c-claim-1"
    assert not stored.correlation_generated
    [staged] = writer.outbox
    env = decode(staged.payload)
    assert env.id == receipt.event_id == stored.published_event_id
    assert env.source == "/prizeflow/webhooks"
    assert env.correlationid == "c-claim-1"
    assert isinstance(env.data, ProviderEventReceived)
    assert env.data.verified
    assert env.data.status is ProviderPayoutStatus.PAID
    assert env.data.payload_digest == stored.body_sha256
    assert stored.event_json is not None
    assert decode(stored.event_json) == env
    assert metric(m, "deliveries", provider="sandbox", outcome="accepted") == 1


async def test_a_duplicate_delivery_is_answered_and_publishes_nothing_new() -> None:
    uc, writer, _, m = ingress()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    await uc(SANDBOX, signature, body)
    again = await uc(SANDBOX, *signed(SANDBOX_SECRET, sandbox_payout(status="failed", error_code="tx_failed")))
    assert again.outcome is DeliveryOutcome.DUPLICATE
    assert again.event_id is None
    assert len(writer.outbox) == 1
    assert len(writer.deliveries) == 1
    assert metric(m, "deliveries", provider="sandbox", outcome="duplicate") == 1


async def test_an_ignored_kind_is_stored_and_publishes_nothing() -> None:
    uc, writer, _, m = ingress()
    receipt = await uc(SANDBOX, *signed(SANDBOX_SECRET, {"event_id": "e-1", "kind": "ping", "subject": "other"}))
    assert receipt.outcome is DeliveryOutcome.IGNORED
    stored = writer.deliveries[("sandbox", "e-1")]
    assert stored.outcome == "ignored"
    assert stored.ignored_reason == "kind_not_handled"
    assert stored.event_json is None
    assert writer.outbox == []
    assert metric(m, "deliveries", provider="sandbox", outcome="ignored") == 1


async def test_a_missing_correlation_id_is_generated_and_counted() -> None:
    uc, writer, _, m = ingress()
    doc = sandbox_payout()
    del doc["correlation_id"]
    await uc(SANDBOX, *signed(SANDBOX_SECRET, doc))
    stored = writer.deliveries[("sandbox", "sbx-evt-1")]
    assert stored.correlation_generated
    assert stored.correlation_id.startswith("wh-")
    assert decode(writer.outbox[0].payload).correlationid == stored.correlation_id
    assert metric(m, "correlation_generated", provider="sandbox") == 1


def _tamper(signature: str) -> str:
    t, _ = signature.split(",")
    return f"{t},v1={'0' * 64}"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s, b: (None, b), RefusalReason.SIGNATURE_MISSING),
        (lambda s, b: ("garbage", b), RefusalReason.SIGNATURE_MALFORMED),
        (lambda s, b: (_tamper(s), b), RefusalReason.SIGNATURE_MISMATCH),
        (lambda s, b: (s, b + b" "), RefusalReason.SIGNATURE_MISMATCH),  # the body changed after signing
        (lambda s, b: signed(SANDBOX_SECRET, b, at=NOW - 301), RefusalReason.TIMESTAMP_STALE),
        (lambda s, b: signed(SANDBOX_SECRET, b, at=NOW + 301), RefusalReason.TIMESTAMP_FUTURE),
        (lambda s, b: signed("another-secret-0123456789", b), RefusalReason.SIGNATURE_MISMATCH),
        (lambda s, b: signed(SANDBOX_SECRET, b"{not json"), RefusalReason.MALFORMED_JSON),
        (lambda s, b: signed(SANDBOX_SECRET, b"[1, 2]"), RefusalReason.MALFORMED_JSON),
        (lambda s, b: signed(SANDBOX_SECRET, sandbox_payout(status="gone")), RefusalReason.INVALID_PAYLOAD),
    ],
)
async def test_each_refusal_stores_and_publishes_nothing_and_is_counted_by_reason(
    make: Any, reason: RefusalReason
) -> None:
    uc, writer, _, m = ingress()
    signature, body = make(*signed(SANDBOX_SECRET, sandbox_payout()))
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(SANDBOX, signature, body)
    assert refused.value.reason is reason
    assert refused.value.code == reason.value
    expected = ErrorKind.INVALID if reason is RefusalReason.INVALID_PAYLOAD else ErrorKind.BAD_REQUEST
    assert refused.value.kind is expected
    assert writer.deliveries == {}
    assert writer.outbox == []
    assert metric(m, "refused", provider="sandbox", reason=reason.value) == 1


async def test_an_unknown_provider_is_refused_under_the_unknown_label() -> None:
    uc, _, _, m = ingress()
    with pytest.raises(WebhookRefusedError) as refused:
        uc.provider("nobody")
    assert refused.value.kind is ErrorKind.NOT_FOUND
    assert metric(m, "refused", provider="unknown", reason="unknown_provider") == 1


async def test_secret_rotation_accepts_either_secret_while_both_are_configured() -> None:
    old, new = "old-secret-0123456789", "new-secret-0123456789"
    rotating = IngressProvider(SANDBOX.name, SANDBOX.type, SANDBOX.scheme, (old, new))
    uc, writer, _, _ = ingress()
    await uc(rotating, *signed(old, sandbox_payout("e-old")))
    await uc(rotating, *signed(new, sandbox_payout("e-new")))
    await uc(rotating, *signed([old, new], sandbox_payout("e-both")))  # the provider signs with both
    assert set(writer.deliveries) == {("sandbox", "e-old"), ("sandbox", "e-new"), ("sandbox", "e-both")}
    rotated = IngressProvider(SANDBOX.name, SANDBOX.type, SANDBOX.scheme, (new,))
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(rotated, *signed(old, sandbox_payout("e-late")))
    assert refused.value.reason is RefusalReason.SIGNATURE_MISMATCH


async def test_a_write_that_fails_answers_nothing_accepted() -> None:
    uc, _, _, _ = ingress(FakeWriter(fail_with=ConnectionRefusedError("db down")))
    with pytest.raises(ConnectionRefusedError):
        await uc(SANDBOX, *signed(SANDBOX_SECRET, sandbox_payout()))


# --- Stripe: confirmation ------------------------------------------------------------------------------------

PAYOUT: dict[str, Any] = {
    "id": "po_1",
    "object": "payout",
    "metadata": {"idempotency_key": "claim-1:payout:1", "correlation_id": "c-1"},
}


def stripe_signed(event: dict[str, Any]) -> tuple[str, bytes]:
    signature, body = signed(STRIPE_SECRET, event)
    return signature, body


async def test_a_stripe_event_is_published_from_the_event_fetched_back_from_stripe() -> None:
    uc, writer, stripe, m = ingress()
    delivered = stripe_event("evt_1", "payout.paid", PAYOUT, account="acct_1")
    # What Stripe holds has more (and the delivered copy's metadata was altered in transit: the fetched wins).
    fetched = stripe_event(
        "evt_1", "payout.paid", {**PAYOUT, "metadata": {**PAYOUT["metadata"], "correlation_id": "c-real"}},
        account="acct_1",
    )  # fmt: skip
    stripe.events["evt_1"] = fetched
    receipt = await uc(STRIPE, *stripe_signed(delivered))
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    assert stripe.asked == [("evt_1", "acct_1")]
    stored = writer.deliveries[("stripe", "evt_1")]
    assert stored.confirmed
    assert stored.correlation_id == "c-real"
    assert stored.body == json.dumps(delivered).encode()  # the raw body as it arrived
    env = decode(writer.outbox[0].payload)
    assert isinstance(env.data, ProviderEventReceived)
    assert env.data.status is ProviderPayoutStatus.PAID
    assert env.data.provider_payout_ref == "po_1"
    assert env.correlationid == "c-real"
    assert metric(m, "confirmations", provider="stripe", outcome="confirmed") == 1


async def test_an_event_stripe_does_not_have_is_refused_and_takes_no_dedup_key() -> None:
    uc, writer, stripe, m = ingress()
    delivered = stripe_event("evt_forged", "payout.paid", PAYOUT, account="acct_1")
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, *stripe_signed(delivered))
    assert refused.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    assert writer.deliveries == {}
    assert writer.outbox == []
    assert metric(m, "confirmations", provider="stripe", outcome="not_found") == 1
    # Asked under another account than the event's: not found either.
    stripe.events["evt_2"] = stripe_event("evt_2", "payout.paid", PAYOUT, account="acct_other")
    with pytest.raises(WebhookRefusedError):
        await uc(STRIPE, *stripe_signed(stripe_event("evt_2", "payout.paid", PAYOUT, account="acct_1")))


@pytest.mark.parametrize(
    "fetched",
    [
        stripe_event("evt_1", "payout.failed", PAYOUT, account="acct_1"),  # another type
        stripe_event("evt_1", "payout.paid", {**PAYOUT, "id": "po_other"}, account="acct_1"),  # another object
        {"id": "evt_1", "account": "acct_1"},  # not an event at all
    ],
)
async def test_an_event_that_differs_at_stripe_is_refused(fetched: dict[str, Any]) -> None:
    uc, writer, stripe, m = ingress()
    stripe.events["evt_1"] = fetched
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, *stripe_signed(stripe_event("evt_1", "payout.paid", PAYOUT, account="acct_1")))
    assert refused.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    assert writer.deliveries == {}
    assert metric(m, "confirmations", provider="stripe", outcome="mismatch") == 1


async def test_stripe_unreachable_is_a_503_and_takes_no_dedup_key() -> None:
    uc, writer, stripe, m = ingress()
    stripe.down = True
    event = stripe_event("evt_1", "payout.paid", PAYOUT, account="acct_1")
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, *stripe_signed(event))
    assert refused.value.kind is ErrorKind.UNAVAILABLE
    assert refused.value.reason is RefusalReason.PROVIDER_UNAVAILABLE
    assert writer.deliveries == {}
    stripe.down = False
    stripe.events["evt_1"] = event
    assert (await uc(STRIPE, *stripe_signed(event))).outcome is DeliveryOutcome.ACCEPTED  # the retry goes through
    assert metric(m, "refused", provider="stripe", reason="provider_unavailable") == 1


async def test_a_stored_stripe_event_is_a_duplicate_without_asking_stripe_again() -> None:
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_1", "payout.paid", PAYOUT, account="acct_1")
    stripe.events["evt_1"] = event
    await uc(STRIPE, *stripe_signed(event))
    stripe.asked.clear()
    assert (await uc(STRIPE, *stripe_signed(event))).outcome is DeliveryOutcome.DUPLICATE
    assert stripe.asked == []
    assert len(writer.outbox) == 1


async def test_a_refund_reads_the_top_up_and_flow_from_its_payment_intent() -> None:
    uc, writer, stripe, _ = ingress()
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd", "payment_intent": "pi_1",
              "status": "succeeded"}  # fmt: skip
    event = stripe_event("evt_r", "refund.created", refund)
    stripe.events["evt_r"] = event
    stripe.intents["pi_1"] = {"id": "pi_1", "metadata": {"top_up_id": "tu-7", "correlation_id": "c-tu-7"}}
    await uc(STRIPE, *stripe_signed(event))
    env = decode(writer.outbox[0].payload)
    assert isinstance(env.data, PaymentEventReceived)
    assert (env.data.top_up_id, env.data.adjustment_ref, env.correlationid) == ("tu-7", "re_1", "c-tu-7")
    assert stripe.asked == [("evt_r", None), ("pi_1", None)]


async def test_a_refund_whose_payment_intent_stripe_does_not_have_is_refused() -> None:
    uc, writer, stripe, _ = ingress()
    refund = {"id": "re_1", "amount": 500, "currency": "usd", "payment_intent": "pi_x", "status": "succeeded"}
    stripe.events["evt_r"] = event = stripe_event("evt_r", "refund.created", refund)
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, *stripe_signed(event))
    assert refused.value.reason is RefusalReason.EVENT_NOT_CONFIRMED
    assert writer.deliveries == {}


async def test_without_confirmation_configured_the_delivered_event_is_normalized() -> None:
    uc, writer, stripe, _ = ingress()
    event = stripe_event("evt_1", "transfer.created", {"id": "tr_1", "metadata": PAYOUT["metadata"]})
    receipt = await uc(STRIPE_UNCONFIRMED, *stripe_signed(event))
    assert receipt.outcome is DeliveryOutcome.ACCEPTED
    assert stripe.asked == []
    stored = writer.deliveries[("stripe_dev", "evt_1")]
    assert not stored.confirmed
    env = decode(writer.outbox[0].payload)
    assert isinstance(env.data, ProviderEventReceived)
    assert env.data.status is None


async def test_a_stripe_signature_is_not_a_prizeflow_signature() -> None:
    uc, _, _, _ = ingress()
    body = json.dumps(sandbox_payout()).encode()
    header = f"t={int(NOW)},v1={compute_signature(SANDBOX_SECRET, int(NOW), body)}"
    # The right HMAC in the wrong header name: sandbox reads Prizeflow-Signature only (the header map is built
    # by the entrypoint from the scheme's header), so a missing one is what it sees.
    with pytest.raises(WebhookRefusedError) as refused:
        await uc(STRIPE, header, body)
    assert refused.value.reason is RefusalReason.SIGNATURE_MISMATCH


def test_a_provider_built_in_code_is_held_to_the_providers_files_rules() -> None:
    """The use case asks the readers' terms as the providers file does: a provider never reads another rail's
    events, and has a confirmation client exactly when it confirms (else it would ask a provider, or fail, at
    the first delivery instead of at start-up)."""
    bad = [
        IngressProvider("stripe_as_ours", ProviderType.STRIPE, "prizeflow_signature", (SANDBOX_SECRET,)),
        IngressProvider("sandbox_as_stripe", ProviderType.SANDBOX, "stripe_signature", (STRIPE_SECRET,)),
        IngressProvider(
            "sandbox_confirming", ProviderType.SANDBOX, "prizeflow_signature", (SANDBOX_SECRET,), confirms=True
        ),
    ]
    for provider in bad:
        with pytest.raises(ValueError, match=provider.name):
            ReceiveWebhook(
                providers={provider.name: provider},
                writer=FakeWriter(),
                metrics=metrics(),
                source="/x",
                apis={provider.name: FakeConfirmer()},
            )
    with pytest.raises(ValueError, match="an api exactly when it confirms"):
        ReceiveWebhook(
            providers={"stripe_dev": STRIPE_UNCONFIRMED},
            writer=FakeWriter(),
            metrics=metrics(),
            source="/x",
            apis={"stripe_dev": FakeConfirmer()},
        )
