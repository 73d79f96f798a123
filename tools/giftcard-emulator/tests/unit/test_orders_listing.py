"""The orders listing as Tremendous pages it (newest first, created_at range, offset/limit, total_count) and the
discrepancies: after each kind the funding balance is still what the listed orders say it paid."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prizeflow_giftcard_emulator.state import EXECUTED, ApiError, Outcome, Store

START = Decimal(10_000)


def order_body(external_id: str | None, *, amount: str = "25.00", email: str = "ann@example.com") -> dict[str, Any]:
    body: dict[str, Any] = {
        "payment": {"funding_source_id": "balance"},
        "reward": {
            "value": {"denomination": Decimal(amount), "currency_code": "USD"},
            "delivery": {"method": "EMAIL"},
            "recipient": {"name": "Player", "email": email},
            "products": ["OKMHM2X2OHYV"],
        },
    }
    if external_id is not None:
        body["external_id"] = external_id
    return body


@pytest.fixture
def store() -> Store:
    return Store(balances={"USD": START})


def paid_by_listing(store: Store) -> Decimal:
    """What the funding source paid, by the orders listing alone: value + fees - refunds of the charged orders."""
    out = Decimal(0)
    for order in store.list_orders({"limit": "100"})["orders"]:
        if order["status"] == EXECUTED:
            payment = order["payment"]
            out += payment["total"]["value"] - payment.get("refund", {}).get("total", Decimal(0))
    return out


def test_orders_are_listed_newest_first_in_pages_with_the_total(store: Store) -> None:
    made = [store.create_order(order_body(f"po-{n}"))[1] for n in range(5)]
    page = store.list_orders({"limit": "2"})
    assert page["total_count"] == 5
    assert [o["external_id"] for o in page["orders"]] == ["po-4", "po-3"]
    last = store.list_orders({"limit": "2", "offset": "4"})
    assert [o["id"] for o in last["orders"]] == [made[0].id]
    assert store.list_orders({})["total_count"] == 5
    assert len(store.list_orders({})["orders"]) == 5  # the default page is 10


def test_the_created_at_range_is_inclusive_and_refuses_what_is_not_a_date(store: Store) -> None:
    first, second, third = (store.create_order(order_body(f"po-{n}"))[1] for n in range(3))
    first.created_at, second.created_at, third.created_at = (
        "2026-01-01T10:00:00.000Z",
        "2026-01-01T11:00:00.000Z",
        "2026-01-01T12:00:00.000Z",
    )
    chosen = store.list_orders({"created_at[gte]": "2026-01-01T11:00:00Z", "created_at[lte]": "2026-01-01T12:00:00Z"})
    assert [o["external_id"] for o in chosen["orders"]] == ["po-2", "po-1"]
    for bad in ({"created_at[gte]": "yesterday"}, {"limit": "101"}, {"limit": "0"}, {"offset": "-1"}, {"page": "2"}):
        with pytest.raises(ApiError) as info:
            store.list_orders(bad)
        assert info.value.status == 400


def test_a_cancelled_card_shows_its_refund_on_the_order(store: Store) -> None:
    store.recipients["bounce@example.com"] = Outcome.DELIVERY_FAILED
    _, order = store.create_order(order_body("po-1", email="bounce@example.com"))
    store.cancel_reward(order.reward.id)
    (listed,) = store.list_orders({})["orders"]
    assert listed["payment"]["refund"] == {"currency_code": "USD", "total": Decimal("25.00")}
    assert store.balances["USD"] == START == START - paid_by_listing(store)


@pytest.mark.parametrize(
    ("kind", "body", "line"),
    [
        ("unrequested", {"amount": 1_500, "asset": "USD", "destination": "x@example.com"}, ""),
        ("missing", {}, None),
        ("amount", {"amount": 2_600}, ""),
        ("destination", {"destination": "else@example.com"}, ""),
        ("duplicate", {}, ""),
        ("reversal", {"amount": 1_000}, ":refund"),
        ("fee", {"amount": 125}, ":fee"),
    ],
)
def test_each_discrepancy_keeps_the_balance_what_the_listing_says_was_paid(
    store: Store, kind: str, body: dict[str, Any], line: str | None
) -> None:
    _, ours = store.create_order(order_body("po-1"))
    args = {"amount": None, "asset": None, "destination": None, **body}
    line_id = store.inject_discrepancy(kind, reference=None if kind == "unrequested" else "po-1", **args)
    assert store.balances["USD"] == START - paid_by_listing(store)
    listed = {o["id"]: o for o in store.list_orders({})["orders"]}
    if line is None:
        assert line_id is None
        assert ours.id not in listed
        assert store.find("po-1") == []
        return
    assert line_id is not None
    order = listed[line_id.removesuffix(line)]
    reward = order["rewards"][0]
    expected = {
        "unrequested": (None, Decimal("15.00"), "x@example.com"),
        "amount": ("po-1", Decimal("26.00"), "ann@example.com"),
        "destination": ("po-1", Decimal("25.00"), "else@example.com"),
        "duplicate": ("po-1", Decimal("25.00"), "ann@example.com"),
        "reversal": ("po-1", Decimal("25.00"), "ann@example.com"),
        "fee": ("po-1", Decimal("25.00"), "ann@example.com"),
    }[kind]
    assert (order["external_id"], reward["value"]["denomination"], reward["recipient"]["email"]) == expected
    if kind == "duplicate":
        assert order["id"] != ours.id
        assert [o.id for o in store.find("po-1")] == [ours.id, order["id"]]
    if kind == "reversal":
        assert order["payment"]["refund"]["total"] == Decimal("10.00")
    if kind == "fee":
        assert (order["payment"]["fees"]["value"], order["payment"]["total"]["value"]) == (
            Decimal("1.25"),
            Decimal("26.25"),
        )


def test_a_whole_reversal_cancels_the_card_and_a_discrepancy_refuses_what_it_cannot(store: Store) -> None:
    _, order = store.create_order(order_body("po-1"))
    assert store.inject_discrepancy("reversal", reference="po-1", amount=None, asset=None, destination=None)
    assert order.reward.delivery_status == "CANCELED"
    with pytest.raises(ApiError):  # nothing left to reverse
        store.inject_discrepancy("reversal", reference="po-1", amount=1, asset=None, destination=None)
    with pytest.raises(ApiError) as unknown:
        store.inject_discrepancy("fee", reference="po-404", amount=1, asset=None, destination=None)
    assert unknown.value.status == 404
    with pytest.raises(ApiError):
        store.inject_discrepancy("teleport", reference="po-1", amount=None, asset=None, destination=None)
    with pytest.raises(ApiError):
        store.inject_discrepancy("unrequested", reference=None, amount=100, asset="USD", destination=None)
