"""Every emulated endpoint through the official `stripe` library, against the emulator as a process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator

pytestmark = pytest.mark.integration


def session_params(top_up_id: str = "tu-1", amount: int = 2500) -> Any:
    """The top-up session as Prizeflow creates it (shared conventions)."""
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "eur", "unit_amount": amount, "product_data": {"name": "Prizeflow top-up"}},
                "quantity": 1,
            }
        ],
        "success_url": "http://127.0.0.1/top-ups/done",
        "cancel_url": "http://127.0.0.1/top-ups/cancel",
        "client_reference_id": top_up_id,
        "metadata": {"top_up_id": top_up_id, "player_id": "player-1", "correlation_id": "corr-1"},
        "payment_intent_data": {
            "metadata": {"top_up_id": top_up_id, "player_id": "player-1", "correlation_id": "corr-1"}
        },
    }


def transfer_params(destination: str, payout_id: str = "po-1", amount: int = 1000) -> Any:
    return {
        "amount": amount,
        "currency": "eur",
        "destination": destination,
        "transfer_group": payout_id,
        "metadata": {"payout_id": payout_id, "idempotency_key": f"key-{payout_id}", "correlation_id": "corr-1"},
    }


async def test_accounts_and_balances(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "DE",
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"player_id": "player-1"},
        }
    )
    assert account.id.startswith("acct_")
    assert account.to_dict()["capabilities"] == {"transfers": "active"}
    assert client.v1.accounts.retrieve(account.id).to_dict()["metadata"] == {"player_id": "player-1"}
    assert [a.id for a in client.v1.accounts.list().data] == [account.id]
    await admin.fund("eur", 5000)
    await admin.fund("usd", 7, account=account.id)
    platform = client.v1.balance.retrieve()
    assert [(b.currency, b.amount) for b in platform.available] == [("eur", 5000)]
    connected = client.v1.balance.retrieve(options={"stripe_account": account.id})
    assert [(b.currency, b.amount) for b in connected.available] == [("usd", 7)]
    with pytest.raises(stripe.PermissionError):
        client.v1.balance.retrieve(options={"stripe_account": "acct_unknown"})


async def test_transfers_reversals_and_insufficient_balance(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    await admin.create_account("acct_player1")
    await admin.fund("eur", 1500)
    transfer = client.v1.transfers.create(
        params=transfer_params("acct_player1"), options={"idempotency_key": "key-po-1"}
    )
    assert (transfer.amount, transfer.destination, transfer.transfer_group) == (1000, "acct_player1", "po-1")
    assert transfer.metadata["payout_id"] == "po-1"
    assert client.v1.transfers.retrieve(transfer.id).amount_reversed == 0
    assert [t.id for t in client.v1.transfers.list(params={"transfer_group": "po-1"}).data] == [transfer.id]
    assert client.v1.transfers.list(params={"destination": "acct_other"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as short:
        client.v1.transfers.create(params=transfer_params("acct_player1", "po-2", 501))
    assert short.value.code == "balance_insufficient"
    assert short.value.http_status == 400
    reversal = client.v1.transfers.reversals.create(transfer.id, params={"amount": 400})
    assert (reversal.amount, reversal.transfer) == (400, transfer.id)
    assert [r.id for r in client.v1.transfers.reversals.list(transfer.id).data] == [reversal.id]
    after = client.v1.transfers.retrieve(transfer.id)
    assert (after.amount_reversed, after.reversed) == (400, False)
    assert await admin.balance() == {"eur": 900}
    assert await admin.balance("acct_player1") == {"eur": 600}
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.transfers.create(params={"amount": 1, "currency": "eur", "destination": "acct_nobody"})
    assert missing.value.http_status == 404
    assert missing.value.param == "destination"


async def test_payouts_on_a_connected_account(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    await admin.create_account("acct_player2", balance={"eur": 1000})
    options: stripe.RequestOptions = {"stripe_account": "acct_player2", "idempotency_key": "key-po-3:payout"}
    payout = client.v1.payouts.create(
        params={"amount": 700, "currency": "eur", "metadata": {"payout_id": "po-3"}}, options=options
    )
    assert (payout.status, payout.amount, payout.to_dict()["metadata"]) == ("pending", 700, {"payout_id": "po-3"})
    connect: stripe.RequestOptions = {"stripe_account": "acct_player2"}
    assert client.v1.payouts.retrieve(payout.id, options=connect).status == "pending"
    assert [p.id for p in client.v1.payouts.list(options=connect).data] == [payout.id]
    with pytest.raises(stripe.InvalidRequestError) as platform:
        client.v1.payouts.retrieve(payout.id)
    assert platform.value.http_status == 404
    await admin.settle_payout(payout.id, "paid")
    with pytest.raises(stripe.InvalidRequestError, match="only pending"):
        client.v1.payouts.cancel(payout.id, options=connect)
    second = client.v1.payouts.create(params={"amount": 300, "currency": "eur"}, options=connect)
    assert client.v1.payouts.cancel(second.id, options=connect).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as short:
        client.v1.payouts.create(params={"amount": 301, "currency": "eur"}, options=connect)
    assert short.value.code == "balance_insufficient"
    events = client.v1.events.list(params={"type": "payout.*"}, options=connect)
    assert [e.type for e in events.data] == ["payout.canceled", "payout.created", "payout.paid", "payout.created"]
    assert {e.account for e in events.data} == {"acct_player2"}


async def test_checkout_session_payment_intent_and_refund(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(params=session_params(), options={"idempotency_key": "tu-1"})
    assert (session.status, session.payment_status, session.amount_total, session.currency) == (
        "open",
        "unpaid",
        2500,
        "eur",
    )
    assert session.client_reference_id == "tu-1"
    assert session.payment_intent is None
    assert session.url
    await admin.complete_session(session.id, "paid")
    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert [
        s.id for s in client.v1.checkout.sessions.list(params={"payment_intent": str(paid.payment_intent)}).data
    ] == [session.id]
    intent = client.v1.payment_intents.retrieve(str(paid.payment_intent))
    assert (intent.status, intent.amount_received, intent.metadata["top_up_id"]) == ("succeeded", 2500, "tu-1")
    assert client.v1.charges.retrieve(str(intent.latest_charge)).paid
    refund = client.v1.refunds.create(
        params={"payment_intent": intent.id, "amount": 500}, options={"idempotency_key": "rf-1"}
    )
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 500, intent.id)
    assert client.v1.refunds.retrieve(refund.id).amount == 500
    assert await admin.balance() == {"eur": 2000}
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent.id, "amount": 2001})
    assert too_much.value.code == "amount_too_large"


async def test_expire_a_session(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(params=session_params("tu-2"))
    assert client.v1.checkout.sessions.expire(session.id).status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    assert [e["type"] for e in await admin.events()] == ["checkout.session.expired"]


async def test_events_retrieve_and_list(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(params=session_params("tu-3"), options={"idempotency_key": "tu-3"})
    await admin.complete_session(session.id, "paid")
    listed = client.v1.events.list(params={"limit": 2})
    assert [e.type for e in listed.data] == ["checkout.session.completed", "payment_intent.succeeded"]
    assert listed.has_more
    event = client.v1.events.retrieve(listed.data[0].id)
    assert event.data.object["id"] == session.id
    assert event.data.object["payment_status"] == "paid"
    nxt = client.v1.events.list(params={"limit": 2, "starting_after": listed.data[1].id})
    assert [e.type for e in nxt.data] == ["charge.succeeded"]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.events.retrieve("evt_missing")
    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"


async def test_webhook_endpoints(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    created = client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["checkout.session.completed"]}
    )
    assert created.secret is not None
    assert created.secret.startswith("whsec_")
    listed = client.v1.webhook_endpoints.list()
    assert [e.id for e in listed.data] == [created.id]
    assert getattr(listed.data[0], "secret", None) is None
    assert client.v1.webhook_endpoints.delete(created.id).deleted
    assert client.v1.webhook_endpoints.list().data == []


async def test_authentication(emulator: StripeEmulator, admin: StripeAdmin, other_client: stripe.StripeClient) -> None:
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": emulator.url})
    with pytest.raises(stripe.AuthenticationError) as err:
        wrong.v1.balance.retrieve()
    assert err.value.http_status == 401
    assert httpx.get(f"{emulator.url}/v1/balance").status_code == 401
    assert other_client.v1.balance.retrieve().object == "balance"


async def test_idempotency_keys(
    admin: StripeAdmin, client: stripe.StripeClient, other_client: stripe.StripeClient
) -> None:
    await admin.create_account("acct_player3")
    await admin.fund("eur", 10_000)
    params = transfer_params("acct_player3", "po-9")
    first = client.v1.transfers.create(params=params, options={"idempotency_key": "key-po-9"})
    again = client.v1.transfers.create(params=params, options={"idempotency_key": "key-po-9"})
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    with pytest.raises(stripe.IdempotencyError):
        client.v1.transfers.create(params=params | {"amount": 1001}, options={"idempotency_key": "key-po-9"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=session_params("x"), options={"idempotency_key": "key-po-9"})
    assert other_client.v1.transfers.create(params=params, options={"idempotency_key": "key-po-9"}).id != first.id
    assert await admin.balance() == {"eur": 8000}
    transfers = await admin.requests(method="POST", path="/v1/transfers")
    assert [(r["status"], r["replayed"]) for r in transfers] == [(200, False), (200, True), (400, False), (200, False)]
    assert transfers[0]["params"]["metadata"]["payout_id"] == "po-9"
    assert (await admin.request_counts())["POST /v1/transfers"] == 4


async def test_unknown_parameters_and_routes_are_refused(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.create(params={"amount": 1, "currency": "eur", "destination": "acct_x", "bogus": "1"})  # type: ignore[typeddict-unknown-key]
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "bogus")
    with pytest.raises(stripe.InvalidRequestError):
        client.raw_request("get", "/v1/customers")


async def test_the_hosted_page_stand_in_completes_a_session(admin: StripeAdmin, client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(params=session_params("tu-4"))
    assert session.url is not None
    page = httpx.get(session.url)
    assert page.status_code == 200
    assert session.id in page.text
    paid = httpx.post(session.url, data={"outcome": "paid"}, follow_redirects=False)
    assert paid.status_code == 303
    assert paid.headers["location"] == "http://127.0.0.1/top-ups/done"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


async def test_the_global_api_base_works_too(
    admin: StripeAdmin, emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_base", emulator.url)
    monkeypatch.setattr(stripe, "api_key", emulator.api_key)
    await admin.create_account("acct_global")
    await admin.fund("eur", 100)
    transfer = stripe.Transfer.create(amount=100, currency="eur", destination="acct_global", idempotency_key="g-1")
    assert stripe.Transfer.retrieve(transfer.id).amount == 100
