"""The request shapes Prizeflow sends, replayed through the official library against stripe-mock (Stripe's own
mock, which validates every request against Stripe's OpenAPI spec): a shape the real API would reject fails
here, whatever the emulator accepts. The same shapes then go to the emulator, which must accept them too.

stripe-mock is installed by tools/devstack/scripts/ensure-stripe-mock.sh; the test skips only when that script
says it cannot be installed on this machine (exit 3), and prints why."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import stripe

from prizeflow_testkit import Process, free_port
from prizeflow_testkit.stripe import StripeAdmin

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[4]
ENSURE = ROOT / "tools" / "devstack" / "scripts" / "ensure-stripe-mock.sh"
CANNOT_INSTALL = 3
ACCOUNT = "acct_1Contract"
PAYOUT_ID = "po-contract-1"
TOP_UP_ID = "tu-contract-1"
METADATA = {"payout_id": PAYOUT_ID, "idempotency_key": "pk-contract-1", "correlation_id": "corr-contract-1"}
TOP_UP_METADATA = {"top_up_id": TOP_UP_ID, "player_id": "player-1", "correlation_id": "corr-contract-1"}


def ensure_stripe_mock() -> Path:
    result = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode == CANNOT_INSTALL:
        print(result.stderr)
        pytest.skip(f"stripe-mock cannot be installed here: {result.stderr.strip()}")
    assert result.returncode == 0, f"ensure-stripe-mock.sh failed ({result.returncode}): {result.stderr}"
    return ROOT / ".devstack" / "tools" / "bin" / "stripe-mock"


@pytest.fixture(scope="module")
def stripe_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = ensure_stripe_mock()
    port = free_port()
    log = tmp_path_factory.mktemp("stripe-mock") / "stripe-mock.log"
    proc = Process([str(binary), "-http-addr", f"127.0.0.1:{port}"], {}, log, ready_line="Listening for HTTP")
    proc.start(timeout=90)  # a process start on a loaded CI machine
    yield f"http://127.0.0.1:{port}"
    proc.stop(timeout=10)


def transfer(client: stripe.StripeClient) -> Any:
    return client.v1.transfers.create(
        params={"amount": 1500, "currency": "eur", "destination": ACCOUNT, "transfer_group": PAYOUT_ID,
                "metadata": METADATA},
        options={"idempotency_key": "pk-contract-1"},
    )  # fmt: skip


def payout(client: stripe.StripeClient) -> Any:
    return client.v1.payouts.create(
        params={"amount": 1500, "currency": "eur", "metadata": METADATA},
        options={"stripe_account": ACCOUNT, "idempotency_key": "pk-contract-1:payout"},
    )


def checkout_session(client: stripe.StripeClient) -> Any:
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 2500,
                        "product_data": {"name": "Prizeflow balance top-up"},
                    },
                    "quantity": 1,
                }
            ],
            "success_url": "https://prizeflow.example/top-ups/done?session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://prizeflow.example/top-ups/cancelled",
            "client_reference_id": TOP_UP_ID,
            "metadata": TOP_UP_METADATA,
            "payment_intent_data": {"metadata": TOP_UP_METADATA},
        },
        options={"idempotency_key": TOP_UP_ID},
    )


def refund(client: stripe.StripeClient, payment_intent: str) -> Any:
    return client.v1.refunds.create(
        params={"payment_intent": payment_intent, "amount": 500}, options={"idempotency_key": "rf-contract-1"}
    )


def other_calls(client: stripe.StripeClient, transfer_id: str, payout_id: str, session_id: str, event_id: str) -> None:
    """The rest of what Prizeflow (and its tests) call: retrievals, reversal, cancel, expire, lists, balance."""
    client.v1.checkout.sessions.retrieve(session_id)
    client.v1.events.retrieve(event_id)
    client.v1.events.list(params={"type": "checkout.session.completed", "limit": 10})
    client.v1.transfers.retrieve(transfer_id)
    client.v1.transfers.reversals.create(transfer_id, params={"amount": 100, "metadata": METADATA})
    client.v1.payouts.retrieve(payout_id, options={"stripe_account": ACCOUNT})
    client.v1.payouts.cancel(payout_id, options={"stripe_account": ACCOUNT})
    client.v1.balance.retrieve(options={"stripe_account": ACCOUNT})
    client.v1.webhook_endpoints.create(
        params={"url": "https://prizeflow.example/webhooks/stripe", "enabled_events": ["payout.paid"], "connect": True}
    )


def test_prizeflow_request_shapes_are_accepted_by_stripe_mock(stripe_mock: str) -> None:
    client = stripe.StripeClient("sk_test_123", base_addresses={"api": stripe_mock})
    made_transfer = transfer(client)
    made_payout = payout(client)
    session = checkout_session(client)
    assert made_transfer.object == "transfer"
    assert made_payout.object == "payout"
    assert session.object == "checkout.session"
    assert refund(client, "pi_123").object == "refund"
    event_id = "evt_123"
    other_calls(client, made_transfer.id, made_payout.id, session.id, event_id)


def test_stripe_mock_rejects_a_shape_the_api_would_reject(stripe_mock: str) -> None:
    """The contract has teeth: a misspelt parameter is refused."""
    client = stripe.StripeClient("sk_test_123", base_addresses={"api": stripe_mock})
    misspelt: Any = {"amount": 1, "currency": "eur", "destinaton": ACCOUNT}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.create(params=misspelt)
    unknown: Any = {"mode": "payment", "payment_intent_metadata": {"a": "b"}}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.create(params=unknown)


async def test_the_emulator_accepts_the_same_shapes(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    await admin.create_account(ACCOUNT)
    await admin.fund("eur", 10_000)
    made_transfer = transfer(client)
    await admin.fund("eur", 1500, account=ACCOUNT)
    made_payout = payout(client)
    session = checkout_session(client)
    await admin.complete_session(session.id)
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert refund(client, str(paid.payment_intent)).status == "succeeded"
    event_id = (await admin.events("checkout.session.completed"))[0]["id"]
    other_calls(client, made_transfer.id, made_payout.id, session.id, event_id)
