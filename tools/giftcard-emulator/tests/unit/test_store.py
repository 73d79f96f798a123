"""The emulator's books without I/O: idempotency by external_id, statuses, approvals, faults' rules, signing."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal
from typing import Any

import pytest

from prizeflow_emulator_kit.faults import Faults
from prizeflow_giftcard_emulator.server import API, FAULT_KINDS
from prizeflow_giftcard_emulator.signing import sign
from prizeflow_giftcard_emulator.state import ApiError, Outcome, Store


def order_body(external_id: str = "po-1", *, amount: str = "25.00", email: str = "ann@example.com") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "payment": {"funding_source_id": "balance"},
        "reward": {
            "value": {"denomination": Decimal(amount), "currency_code": "USD"},
            "delivery": {"method": "EMAIL"},
            "recipient": {"name": "Player", "email": email},
            "products": ["OKMHM2X2OHYV"],
        },
    }


def store(**kw: Any) -> Store:
    return Store(balances={"USD": Decimal(100)}, **kw)


def test_an_order_is_executed_delivered_and_charged_once_per_external_id() -> None:
    s = store()
    status, first = s.create_order(order_body())
    assert (status, first.status, first.reward.delivery_status) == (201, "EXECUTED", "SUCCEEDED")
    status, again = s.create_order(order_body())
    assert (status, again.id) == (201, first.id)
    assert (s.created, s.balances["USD"]) == (1, Decimal(75))
    assert [e.event for e in s.events] == ["ORDERS.CREATED", "REWARDS.DELIVERY.SUCCEEDED"]


def test_a_conflicting_body_replays_the_first_order_or_is_refused_with_409() -> None:
    s = store()
    _, first = s.create_order(order_body())
    assert s.create_order(order_body(amount="30.00"))[1].id == first.id  # what Tremendous documents
    strict = store(external_id_conflict="reject")
    strict.create_order(order_body())
    with pytest.raises(ApiError) as err:
        strict.create_order(order_body(amount="30.00"))
    assert err.value.status == 409


def test_refusals_store_nothing_and_charge_nothing() -> None:
    s = store()
    for body, status in [
        (order_body(amount="250.00"), 400),  # insufficient funds
        (order_body(amount="0.50"), 400),  # below the product's minimum
        (order_body(amount="1.005"), 400),  # not in cents
        (order_body(email="not-an-email"), 422),
    ]:
        with pytest.raises(ApiError) as err:
            s.create_order(body)
        assert err.value.status == status
    assert (s.created, s.balances["USD"], s.events) == (0, Decimal(100), [])


def test_approval_holds_the_order_until_approved_or_rejected() -> None:
    s = store()
    s.recipients["ann@example.com"] = Outcome.APPROVAL
    _, held = s.create_order(order_body())
    assert (held.status, s.balances["USD"]) == ("PENDING APPROVAL", Decimal(100))
    assert s.approve(held.id).reward.delivery_status == "SUCCEEDED"
    assert s.balances["USD"] == Decimal(75)
    _, other = s.create_order(order_body("po-2"))
    assert s.reject(other.id).status == "CANCELED"
    with pytest.raises(ApiError):
        s.reject(other.id)


def test_scheduled_email_rewards_are_delivered_when_due_and_bounces_fail() -> None:
    s = store(delivery_delay_ms=1000)
    _, order = s.create_order(order_body())
    assert order.reward.delivery_status == "SCHEDULED"
    assert s.advance(order.reward.deliver_at or 0) == 1
    assert order.reward.delivery_status == "SUCCEEDED"
    s.recipients["bob@example.com"] = Outcome.DELIVERY_FAILED
    _, bounced = s.create_order(order_body("po-3", email="bob@example.com"))
    assert bounced.reward.delivery_status == "FAILED"
    assert s.events[-1].event == "REWARDS.DELIVERY.FAILED"


def test_only_a_link_reward_shows_its_link() -> None:
    s = store()
    body = order_body()
    body["reward"]["delivery"]["method"] = "LINK"
    _, order = s.create_order(body)
    assert order.to_json()["rewards"][0]["delivery"]["link"] == order.reward.link
    _, mail = s.create_order(order_body("po-2"))
    assert "link" not in mail.to_json()["rewards"][0]["delivery"]


def test_links_for_email_shows_an_email_reward_s_link_too() -> None:
    s = store(links_for_email=True)
    _, mail = s.create_order(order_body())
    assert mail.to_json()["rewards"][0]["delivery"]["link"] == mail.reward.link


def test_a_bounced_card_resent_is_delivered_and_a_redeemed_one_can_no_longer_be_cancelled() -> None:
    s = store()
    s.recipients["ann@example.com"] = Outcome.DELIVERY_FAILED
    _, first = s.create_order(order_body())
    assert s.resend(first.reward.id).delivery_status == "SUCCEEDED"
    assert s.events[-1].event == "REWARDS.DELIVERY.SUCCEEDED"
    _, second = s.create_order(order_body("po-2"))
    s.redeem(second.reward.id)
    assert second.to_json()["rewards"][0]["redemption"] == {"status": "REDEEMED"}
    with pytest.raises(ApiError) as err:
        s.cancel_reward(second.reward.id)
    assert err.value.status == 422
    assert s.balances["USD"] == Decimal(50)  # neither refunded


def test_faults_are_consumed_and_signatures_are_hmac_sha256_of_the_body() -> None:
    f = Faults(FAULT_KINDS, path_prefixes=(API,))
    f.add("server_error", method="POST", path_prefix="/api/v2/orders", count=2)
    assert f.take("GET", "/api/v2/orders/x") is None
    assert f.take("POST", "/api/v2/orders") is not None
    assert f.take("POST", "/api/v2/orders") is not None
    assert f.take("POST", "/api/v2/orders") is None
    body = b'{"event":"ORDERS.CREATED"}'
    assert sign("key", body) == "sha256=" + hmac.new(b"key", body, hashlib.sha256).hexdigest()
