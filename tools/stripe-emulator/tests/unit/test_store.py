"""The store's rules, transition by transition: balances, payout and session lifecycles, refunds, disputes, and
the events each change records."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.models import ADMIN, PAYOUT_TRANSITIONS, Ctx, PayoutStatus
from prizeflow_stripe_emulator.state import Store

NOW = 1_750_000_000


@pytest.fixture
def store() -> Store:
    s = Store(api_version="2024-06-20", public_url="http://emulator", clock=lambda: NOW)
    s.create_account({}, account_id="acct_player")
    return s


def types(store: Store) -> list[str]:
    return [e["type"] for e in store.events.values()]


def session_params(amount: int = 2500) -> dict[str, Any]:
    return {
        "mode": "payment",
        "line_items": [
            {"price_data": {"currency": "eur", "unit_amount": str(amount), "product_data": {"name": "Top-up"}},
             "quantity": "1"}
        ],
        "success_url": "http://x/ok",
        "client_reference_id": "tu-1",
        "metadata": {"top_up_id": "tu-1"},
        "payment_intent_data": {"metadata": {"top_up_id": "tu-1", "player_id": "p-1"}},
    }  # fmt: skip


def test_a_transfer_moves_platform_money_to_the_account_and_refuses_when_short(store: Store) -> None:
    store.fund("eur", 1000)
    ctx = Ctx(request_id="req_1", idempotency_key="po-1")
    transfer = store.create_transfer(
        {"amount": "600", "currency": "eur", "destination": "acct_player", "metadata": {"payout_id": "po-1"}}, ctx
    )
    assert store.platform_balance == {"eur": 400}
    assert store.account_balances["acct_player"] == {"eur": 600}
    event = store.events[next(reversed(store.events))]
    assert event["type"] == "transfer.created"
    assert "account" not in event
    assert event["request"] == {"id": "req_1", "idempotency_key": "po-1"}
    assert event["data"]["object"]["metadata"] == {"payout_id": "po-1"}
    with pytest.raises(StripeError) as short:
        store.create_transfer({"amount": "401", "currency": "eur", "destination": "acct_player"}, ctx)
    assert short.value.code == "balance_insufficient"
    with pytest.raises(StripeError) as unknown:
        store.create_transfer({"amount": "1", "currency": "eur", "destination": "acct_nobody"}, ctx)
    assert (unknown.value.status, unknown.value.param) == (404, "destination")
    reversal = store.create_reversal(transfer["id"], {"amount": "100"}, ADMIN)
    assert reversal["amount"] == 100
    assert transfer["amount_reversed"] == 100
    assert not transfer["reversed"]
    store.create_reversal(transfer["id"], {}, ADMIN)
    assert transfer["reversed"]
    assert store.platform_balance == {"eur": 1000}
    assert types(store).count("transfer.reversed") == 2
    with pytest.raises(StripeError, match="fully reversed"):
        store.create_reversal(transfer["id"], {}, ADMIN)


def test_a_restricted_account_refuses_transfers_and_payouts(store: Store) -> None:
    store.fund("eur", 100)
    store.fund("eur", 100, "acct_player")
    store.update_account("acct_player", payouts_enabled=False, transfers="inactive")
    with pytest.raises(StripeError) as transfer:
        store.create_transfer({"amount": "1", "currency": "eur", "destination": "acct_player"}, ADMIN)
    assert transfer.value.code == "insufficient_capabilities_for_transfer"
    with pytest.raises(StripeError) as payout:
        store.create_payout({"amount": "1", "currency": "eur"}, Ctx(account="acct_player"))
    assert payout.value.code == "payouts_not_allowed"


@pytest.mark.parametrize("start", list(PayoutStatus))
@pytest.mark.parametrize("to", [PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED])
def test_payout_settlement_follows_the_transition_table(store: Store, start: PayoutStatus, to: PayoutStatus) -> None:
    store.fund("eur", 500, "acct_player")
    payout = store.create_payout({"amount": "500", "currency": "eur"}, Ctx(account="acct_player"))
    payout["status"] = start.value
    if to in PAYOUT_TRANSITIONS[start]:
        store.settle_payout(payout["id"], to.value)
        assert payout["status"] == to.value
        assert store.events[next(reversed(store.events))]["account"] == "acct_player"
    else:
        with pytest.raises(StripeError):
            store.settle_payout(payout["id"], to.value)


def test_a_paid_payout_returned_by_the_bank_fails_and_the_money_comes_back(store: Store) -> None:
    store.fund("eur", 500, "acct_player")
    ctx = Ctx(account="acct_player")
    payout = store.create_payout({"amount": "300", "currency": "eur", "metadata": {"payout_id": "po-1"}}, ctx)
    assert store.account_balances["acct_player"] == {"eur": 200}
    store.settle_payout(payout["id"], "paid")
    store.settle_payout(payout["id"], "failed", "account_closed")
    assert payout["status"] == "failed"
    assert payout["failure_code"] == "account_closed"
    assert store.account_balances["acct_player"] == {"eur": 500}
    assert types(store)[-3:] == ["payout.created", "payout.paid", "payout.failed"]
    with pytest.raises(StripeError, match="only pending"):
        store.cancel_payout(payout["id"], ctx)
    with pytest.raises(StripeError) as other_account:
        store.get_payout(payout["id"], None)
    assert other_account.value.status == 404


def test_cancel_only_while_pending(store: Store) -> None:
    store.fund("eur", 500, "acct_player")
    ctx = Ctx(account="acct_player")
    payout = store.create_payout({"amount": "500", "currency": "eur"}, ctx)
    store.cancel_payout(payout["id"], ctx)
    assert payout["status"] == "canceled"
    assert store.account_balances["acct_player"] == {"eur": 500}
    with pytest.raises(StripeError):
        store.cancel_payout(payout["id"], ctx)


def test_a_paid_session_creates_the_payment_and_credits_the_platform(store: Store) -> None:
    session = store.create_session(session_params(), Ctx(idempotency_key="tu-1"))
    assert (session["status"], session["payment_status"], session["payment_intent"]) == ("open", "unpaid", None)
    assert session["url"].startswith("http://emulator/c/pay/cs_test_")
    store.complete_session(session["id"], "paid")
    pi = store.get_payment_intent(session["payment_intent"])
    assert (session["status"], session["payment_status"], pi["status"]) == ("complete", "paid", "succeeded")
    assert pi["metadata"] == {"top_up_id": "tu-1", "player_id": "p-1"}
    assert store.platform_balance == {"eur": 2500}
    assert types(store)[-3:] == ["charge.succeeded", "payment_intent.succeeded", "checkout.session.completed"]
    with pytest.raises(StripeError, match="status in"):
        store.expire_session(session["id"], ADMIN)


@pytest.mark.parametrize(("outcome", "paid"), [("async_succeeded", True), ("async_failed", False)])
def test_an_async_session_is_complete_but_unpaid_until_its_outcome(store: Store, outcome: str, paid: bool) -> None:
    session = store.create_session(session_params(), ADMIN)
    store.complete_session(session["id"], "async")
    completed = store.events[next(reversed(store.events))]
    assert completed["type"] == "checkout.session.completed"
    assert completed["data"]["object"]["payment_status"] == "unpaid"
    assert store.platform_balance == {}
    store.async_result(session["id"], outcome)
    assert session["payment_status"] == ("paid" if paid else "unpaid")
    assert types(store)[-1] == f"checkout.session.{outcome.replace('async_', 'async_payment_')}"
    assert store.platform_balance == ({"eur": 2500} if paid else {})
    with pytest.raises(StripeError):
        store.async_result(session["id"], outcome)


def test_a_session_expires_by_call_or_by_time(store: Store) -> None:
    session = store.create_session(session_params(), ADMIN)
    store.expire_session(session["id"], ADMIN)
    assert session["status"] == "expired"
    assert types(store)[-1] == "checkout.session.expired"
    with pytest.raises(StripeError):
        store.complete_session(session["id"], "paid")
    late = store.create_session(session_params(), ADMIN)
    store.clock = lambda: NOW + 86_401
    assert store.get_session(late["id"])["status"] == "expired"


def test_session_parameters_are_checked(store: Store) -> None:
    bad_mode = {**session_params(), "mode": "subscription"}
    with pytest.raises(StripeError, match="mode=payment"):
        store.create_session(bad_mode, ADMIN)
    no_name = session_params()
    del no_name["line_items"][0]["price_data"]["product_data"]["name"]
    with pytest.raises(StripeError) as err:
        store.create_session(no_name, ADMIN)
    assert err.value.param == "line_items[0][price_data][product_data][name]"
    with pytest.raises(StripeError) as unknown:
        store.create_session({**session_params(), "line_item": []}, ADMIN)
    assert unknown.value.code == "parameter_unknown"


def paid_intent(store: Store, amount: int = 2500) -> str:
    session = store.create_session(session_params(amount), ADMIN)
    store.complete_session(session["id"], "paid")
    return str(session["payment_intent"])


def test_refunds_partial_then_full_then_refused(store: Store) -> None:
    pi = paid_intent(store)
    refund = store.create_refund({"payment_intent": pi, "amount": "1000"}, Ctx(idempotency_key="rf-1"))
    assert (refund["amount"], refund["status"], refund["payment_intent"]) == (1000, "succeeded", pi)
    assert types(store)[-2:] == ["refund.created", "charge.refunded"]
    with pytest.raises(StripeError) as too_much:
        store.create_refund({"payment_intent": pi, "amount": "1501"}, ADMIN)
    assert too_much.value.code == "amount_too_large"
    store.create_refund({"payment_intent": pi}, ADMIN)
    charge = store.charges[store.payment_intents[pi]["latest_charge"]]
    assert charge["refunded"]
    assert charge["amount_refunded"] == 2500
    assert store.platform_balance == {"eur": 0}
    with pytest.raises(StripeError) as again:
        store.create_refund({"payment_intent": pi}, ADMIN)
    assert again.value.code == "charge_already_refunded"


@pytest.mark.parametrize("won", [True, False])
def test_a_dispute_withdraws_and_reinstates_only_when_won(store: Store, won: bool) -> None:
    pi = paid_intent(store)
    dispute = store.open_dispute(pi)
    assert store.platform_balance == {"eur": 0}
    assert types(store)[-2:] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    with pytest.raises(StripeError) as refund:
        store.create_refund({"payment_intent": pi}, ADMIN)
    assert refund.value.code == "charge_disputed"
    store.close_dispute(dispute["id"], "won" if won else "lost")
    expected = ["charge.dispute.funds_reinstated", "charge.dispute.closed"] if won else ["charge.dispute.closed"]
    assert types(store)[-len(expected) :] == expected
    assert store.platform_balance == {"eur": 2500 if won else 0}
    with pytest.raises(StripeError):
        store.close_dispute(dispute["id"], "lost")


def test_events_are_scoped_to_their_account(store: Store) -> None:
    store.fund("eur", 100, "acct_player")
    store.create_payout({"amount": "100", "currency": "eur"}, Ctx(account="acct_player"))
    connect = next(e for e in store.events.values() if e["type"] == "payout.created")
    with pytest.raises(StripeError):
        store.get_event(connect["id"], None)
    assert store.get_event(connect["id"], "acct_player") is connect
    listed = store.list_events({"type": "payout.*"}, "acct_player")
    assert [e["id"] for e in listed["data"]] == [connect["id"]]
    assert store.list_events({"type": "payout.created"}, None)["data"] == []


def test_an_api_endpoint_gets_platform_events_and_a_connect_one_connect_events(store: Store) -> None:
    platform = store.get_endpoint(store.create_endpoint({"url": "http://x/a", "enabled_events": ["*"]})["id"])
    connect = store.get_endpoint(
        store.create_endpoint({"url": "http://x/b", "enabled_events": ["payout.paid"], "connect": "true"})["id"]
    )
    everything = store.add_endpoint("http://x/c", "whsec_given")
    connect_event = {"type": "payout.paid", "account": "acct_player"}
    platform_event = {"type": "transfer.created"}
    assert platform.wants(platform_event)
    assert not platform.wants(connect_event)
    assert connect.wants(connect_event)
    assert not connect.wants(platform_event)
    assert everything.wants(connect_event)
    assert everything.wants(platform_event)
    assert everything.secrets == ["whsec_given"]
    store.roll_secret(everything.id, "whsec_next")
    assert everything.secrets == ["whsec_next", "whsec_given"]
    store.finish_roll(everything.id)
    assert everything.secrets == ["whsec_next"]
