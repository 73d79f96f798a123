"""Webhook delivery to a real HTTP endpoint, verified with the official library: signatures, Connect events,
retries, duplicates, out-of-order release, stale timestamps, secret rotation, the delivery log."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest
import stripe

from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, WebhookReceiver, stripe_emulator

pytestmark = pytest.mark.integration

SECRET = "whsec_prizeflow_test_secret"


def verified(receiver: WebhookReceiver, index: int, secret: str = SECRET) -> stripe.Event:
    delivery = receiver.received[index]
    event: stripe.Event = stripe.Webhook.construct_event(delivery.body, delivery.signature, secret)
    return event


async def paid_session(admin: StripeAdmin, client: stripe.StripeClient, top_up_id: str = "tu-1") -> str:
    session = await asyncio.to_thread(
        client.v1.checkout.sessions.create,
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "eur", "unit_amount": 900, "product_data": {"name": "Top-up"}},
                    "quantity": 1,
                }
            ],
            "success_url": "http://127.0.0.1/ok",
            "client_reference_id": top_up_id,
            "metadata": {"top_up_id": top_up_id},
        },
    )
    await admin.complete_session(session.id, "paid")
    return session.id


async def test_events_arrive_signed_in_order(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    await admin.add_endpoint(receiver.url, SECRET)
    session_id = await paid_session(admin, client)
    await receiver.wait_for(3)
    events = [verified(receiver, i) for i in range(3)]
    assert [e.type for e in events] == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    assert events[2].data.object["id"] == session_id
    assert receiver.received[0].headers["Content-Type"].startswith("application/json")
    await admin.wait_deliveries(lambda ds: len(ds) == 3 and all(d["state"] == "succeeded" for d in ds))
    assert client.v1.events.retrieve(events[2].id).pending_webhooks == 0


async def test_connect_events_carry_the_account(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    await admin.create_account("acct_hooks", balance={"eur": 500})
    await admin.add_endpoint(receiver.url, SECRET, enabled_events=["payout.paid", "payout.failed"], connect=True)
    payout = await asyncio.to_thread(
        client.v1.payouts.create, params={"amount": 500, "currency": "eur"}, options={"stripe_account": "acct_hooks"}
    )
    await admin.settle_payout(payout.id, "paid")
    await admin.settle_payout(payout.id, "failed", "account_closed")  # a bank return
    await receiver.wait_for(2)
    paid, returned = verified(receiver, 0), verified(receiver, 1)
    assert (paid.type, paid.account, returned.type) == ("payout.paid", "acct_hooks", "payout.failed")
    assert returned.data.object["failure_code"] == "account_closed"
    assert returned.data.previous_attributes is not None
    assert returned.data.previous_attributes["status"] == "paid"


async def test_a_failing_endpoint_is_retried_with_backoff(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    receiver.fail_next = 2
    await admin.webhook_config(retry_base_ms=100)
    await admin.add_endpoint(receiver.url, SECRET, enabled_events=["checkout.session.completed"])
    await paid_session(admin, client)
    await receiver.wait_for(3)
    [delivery] = await admin.wait_deliveries(
        lambda ds: ds[0]["state"] == "succeeded", type="checkout.session.completed"
    )
    assert [a["status"] for a in delivery["attempts"]] == [500, 500, 200]
    gaps = [b["at"] - a["at"] for a, b in zip(delivery["attempts"], delivery["attempts"][1:], strict=False)]
    assert gaps[0] >= 0.1  # a timer never fires early: at least 100 ms, then at least 200 ms
    assert gaps[1] >= 0.2
    assert {r.body for r in receiver.received} == {receiver.received[0].body}  # the same event every time


async def test_an_unreachable_endpoint_fails_after_the_bounded_attempts(
    admin: StripeAdmin, client: stripe.StripeClient
) -> None:
    from prizeflow_testkit import free_port

    await admin.add_endpoint(
        f"http://127.0.0.1:{free_port()}/nobody", SECRET, enabled_events=["checkout.session.completed"]
    )
    await paid_session(admin, client)
    [delivery] = await admin.wait_deliveries(lambda ds: bool(ds) and ds[0]["state"] == "failed")
    assert len(delivery["attempts"]) == 4
    assert all(a["error"] for a in delivery["attempts"])


async def test_duplicates(admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    await admin.add_endpoint(receiver.url, SECRET, enabled_events=["checkout.session.completed"])
    await admin.duplicates(3)
    await paid_session(admin, client)
    await receiver.wait_for(3)
    assert len({verified(receiver, i).id for i in range(3)}) == 1


async def test_held_deliveries_released_in_reverse(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    await admin.add_endpoint(receiver.url, SECRET)
    await admin.hold()
    await paid_session(admin, client)
    held = await admin.deliveries(state="held")
    assert [d["event_type"] for d in held] == [
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert receiver.received == []
    await admin.release("reverse")
    await receiver.wait_for(3)
    assert [verified(receiver, i).type for i in range(3)] == [
        "checkout.session.completed", "payment_intent.succeeded", "charge.succeeded"
    ]  # fmt: skip


async def test_shuffled_release_is_reproducible_with_a_seed(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    await admin.add_endpoint(receiver.url, SECRET)
    await admin.hold()
    await paid_session(admin, client, "tu-a")
    await paid_session(admin, client, "tu-b")
    released = await admin.release("shuffle", seed=7)
    await receiver.wait_for(6)
    assert [verified(receiver, i).id for i in range(6)] == [d["event_id"] for d in released]


async def test_a_stale_timestamp_fails_verification(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    await admin.add_endpoint(receiver.url, SECRET, enabled_events=["checkout.session.completed"])
    await admin.stale_timestamps(-600)
    await paid_session(admin, client)
    await receiver.wait_for(1)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        verified(receiver, 0)
    [delivery] = await admin.deliveries()
    assert delivery["attempts"][0]["timestamp"] < time.time() - 590


async def test_a_secret_rotation_signs_with_both(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    endpoint = await admin.add_endpoint(receiver.url, SECRET, enabled_events=["checkout.session.completed"])
    await admin.roll_secret(endpoint["id"], "whsec_next")
    await paid_session(admin, client, "tu-r1")
    await receiver.wait_for(1)
    assert receiver.received[0].headers["Stripe-Signature"].count("v1=") == 2
    assert verified(receiver, 0, SECRET).id == verified(receiver, 0, "whsec_next").id
    await admin.finish_roll(endpoint["id"])
    await paid_session(admin, client, "tu-r2")
    await receiver.wait_for(2)
    verified(receiver, 1, "whsec_next")
    with pytest.raises(stripe.SignatureVerificationError):
        verified(receiver, 1, SECRET)


async def test_resend_and_api_created_endpoints(
    admin: StripeAdmin, client: stripe.StripeClient, receiver: WebhookReceiver
) -> None:
    created = await asyncio.to_thread(
        client.v1.webhook_endpoints.create,
        params={"url": receiver.url, "enabled_events": ["checkout.session.completed"]},
    )
    assert created.secret is not None
    await paid_session(admin, client)
    await receiver.wait_for(1)
    event = verified(receiver, 0, created.secret)
    await admin.resend(event.id)
    await receiver.wait_for(2)
    assert verified(receiver, 1, created.secret).id == event.id


async def test_endpoints_from_the_environment(tmp_path: Path, receiver: WebhookReceiver) -> None:
    env = {
        "STRIPE_EMULATOR_WEBHOOK_ENDPOINTS": f"{receiver.url}|whsec_from_env",
        "STRIPE_EMULATOR_ACCOUNTS": "acct_env",
        "STRIPE_EMULATOR_PLATFORM_BALANCE": "eur:100",
    }
    with stripe_emulator(tmp_path / "env.log", env=env) as em:
        transfer = await asyncio.to_thread(
            em.client().v1.transfers.create, params={"amount": 100, "currency": "eur", "destination": "acct_env"}
        )
        [received] = await receiver.wait_for(1)
        event = stripe.Webhook.construct_event(received.body, received.signature, "whsec_from_env")
        assert (event.type, event.data.object["id"]) == ("transfer.created", transfer.id)


def test_a_missing_api_key_setting_stops_start_up() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "prizeflow_stripe_emulator"],
        env={"STRIPE_EMULATOR_PORT": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "STRIPE_EMULATOR_API_KEYS" in result.stderr


async def test_emulator_is_started_by_the_harness(emulator: StripeEmulator) -> None:
    assert emulator.process.running
