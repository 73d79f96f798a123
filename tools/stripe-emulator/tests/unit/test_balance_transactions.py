"""The store's balance transactions and discrepancies: every movement of a balance is one balance transaction
(negative for money out), so a balance is always the sum of its transactions' `net`, also after every kind of
discrepancy; the listing's filters, expansion and paging."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_stripe_emulator.errors import StripeError
from prizeflow_stripe_emulator.models import ADMIN, Ctx
from prizeflow_stripe_emulator.state import Store

NOW = 1_750_000_000


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> Store:
    s = Store(api_version="2024-06-20", public_url="http://emulator", clock=clock)
    s.fund("usd", 100_000)
    for account in ("acct_a", "acct_b"):
        s.create_account({}, account_id=account)
    return s


def pay(store: Store, key: str, amount: int = 1_000, destination: str = "acct_a") -> dict[str, Any]:
    meta = {"payout_id": f"pay-{key}", "idempotency_key": key}
    raw = {"amount": str(amount), "currency": "usd", "destination": destination, "transfer_group": f"pay-{key}"}
    return store.create_transfer({**raw, "metadata": meta}, Ctx(idempotency_key=key))


def books_balance(store: Store, account: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for bid, bt in store.balance_transactions.items():
        if store.bt_accounts[bid] == account:
            out[bt["currency"]] = out.get(bt["currency"], 0) + bt["net"]
    return {c: v for c, v in out.items() if v}


def assert_balanced(store: Store) -> None:
    for account in (None, *store.accounts):
        balance = {c: v for c, v in store._balance_of(account).items() if v}
        assert books_balance(store, account) == balance, account


def test_every_movement_is_a_balance_transaction_with_stripes_sign(store: Store) -> None:
    transfer = pay(store, "k1")
    reversal = store.create_reversal(transfer["id"], {"amount": "300"}, ADMIN)
    payout = store.create_payout({"amount": "500", "currency": "usd"}, Ctx(account="acct_a"))
    store.settle_payout(payout["id"], "failed")
    platform = store.list_balance_transactions({"limit": "100"}, None)["data"]
    assert [(bt["type"], bt["amount"], bt["source"]) for bt in platform] == [
        ("transfer_refund", 300, reversal["id"]),
        ("transfer", -1_000, transfer["id"]),
        ("adjustment", 100_000, None),
    ]
    assert platform[1]["id"] == transfer["balance_transaction"]
    connected = store.list_balance_transactions({"limit": "100"}, "acct_a")["data"]
    assert [(bt["type"], bt["amount"]) for bt in connected] == [
        ("payout_failure", 500),
        ("payout", -500),
        ("payment_refund", -300),
        ("payment", 1_000),
    ]
    assert_balanced(store)


def test_the_listing_filters_by_created_and_type_expands_sources_and_pages(store: Store, clock: Clock) -> None:
    clock.now = NOW + 10
    first = pay(store, "k1")
    clock.now = NOW + 20
    second = pay(store, "k2")
    store.create_reversal(second["id"], {}, ADMIN)
    window = {"created": {"gte": str(NOW + 10), "lt": str(NOW + 20)}}
    assert [bt["source"] for bt in store.list_balance_transactions(dict(window), None)["data"]] == [first["id"]]
    transfers = store.list_balance_transactions({"type": "transfer"}, None)["data"]
    assert [bt["source"] for bt in transfers] == [second["id"], first["id"]]
    expanded = store.list_balance_transactions(
        {"type": "transfer_refund", "expand": ["data.source", "data.source.transfer"]}, None
    )["data"][0]
    assert expanded["source"]["object"] == "transfer_reversal"
    assert expanded["source"]["transfer"]["metadata"]["idempotency_key"] == "k2"
    page = store.list_balance_transactions({"limit": "2"}, None)
    assert page["has_more"] is True
    rest = store.list_balance_transactions({"limit": "2", "starting_after": page["data"][-1]["id"]}, None)
    assert [bt["type"] for bt in page["data"] + rest["data"]] == [
        "transfer_refund",
        "transfer",
        "transfer",
        "adjustment",
    ]
    assert rest["has_more"] is False
    with pytest.raises(StripeError) as bad:
        store.list_balance_transactions({"expand": ["data.fee_details"]}, None)
    assert bad.value.param == "expand"
    with pytest.raises(StripeError) as unknown:
        store.list_balance_transactions({"transfer_group": "x"}, None)
    assert unknown.value.param == "transfer_group"


def test_transfers_and_payouts_are_filtered_by_created(store: Store, clock: Clock) -> None:
    pay(store, "old")
    clock.now = NOW + 100
    new = pay(store, "new")
    listed = store.list_transfers({"created": {"gt": str(NOW)}})["data"]
    assert [t["id"] for t in listed] == [new["id"]]
    assert store.list_payouts({"created": str(NOW)}, "acct_a")["data"] == []


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("unrequested", {"amount": 700, "asset": "USD", "destination": "acct_stranger"}),
        ("missing", {}),
        ("amount", {"amount": 1_250}),
        ("destination", {"destination": "acct_b"}),
        ("duplicate", {}),
        ("reversal", {"amount": 400}),
        ("fee", {"amount": 30}),
    ],
)
def test_each_discrepancy_keeps_every_balance_the_sum_of_its_transactions(
    store: Store, kind: str, body: dict[str, Any]
) -> None:
    transfer = pay(store, "k1")
    reference = None if kind == "unrequested" else "k1"
    args = {"amount": None, "asset": None, "destination": None, **body}
    line_id = store.inject_discrepancy(kind, reference=reference, **args)
    assert_balanced(store)
    platform = {bt["id"]: bt for bt in store.list_balance_transactions({"limit": "100"}, None)["data"]}
    if kind == "missing":
        assert line_id is None
        assert transfer["id"] not in store.transfers
        assert transfer["balance_transaction"] not in platform
        return
    assert line_id is not None
    bt = platform[line_id.removesuffix(":fee")]
    expected = {
        "unrequested": ("transfer", -700, 0),
        "amount": ("transfer", -1_250, 0),
        "destination": ("transfer", -1_000, 0),
        "duplicate": ("transfer", -1_000, 0),
        "reversal": ("transfer_refund", 400, 0),
        "fee": ("transfer", -1_000, 30),
    }[kind]
    assert (bt["type"], bt["amount"], bt["fee"]) == expected
    if kind == "destination":
        assert store.transfers[transfer["id"]]["destination"] == "acct_b"
    if kind == "duplicate":
        copy = store.transfers[bt["source"]]
        assert copy["id"] != transfer["id"]
        assert copy["metadata"] == transfer["metadata"]
    if kind == "fee":
        assert line_id == f"{bt['id']}:fee"
        assert bt["net"] == -1_030


def test_a_discrepancy_names_a_payout_by_its_key_or_id_and_refuses_what_it_cannot_do(store: Store) -> None:
    pay(store, "k1")
    assert store.inject_discrepancy("amount", reference="pay-k1", amount=900, asset=None, destination=None)
    with pytest.raises(StripeError) as unknown:
        store.inject_discrepancy("fee", reference="nobody", amount=1, asset=None, destination=None)
    assert unknown.value.status == 404
    with pytest.raises(StripeError):
        store.inject_discrepancy("fee", reference="k1", amount=None, asset=None, destination=None)
    with pytest.raises(StripeError):
        store.inject_discrepancy("teleport", reference="k1", amount=None, asset=None, destination=None)
    with pytest.raises(StripeError):
        store.inject_discrepancy("unrequested", reference=None, amount=5, asset="USD", destination=None)
