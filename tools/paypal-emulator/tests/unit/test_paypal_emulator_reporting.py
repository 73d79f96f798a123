"""Transaction Search over the books (one line per money movement with PayPal's T-codes, the 31-day window, paging,
filters, the reporting delay) and the discrepancies: after each kind the balance is still the opening balance plus
what Transaction Search lists, and the line it answers is the one changed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prizeflow_paypal_emulator import discrepancies
from prizeflow_paypal_emulator.books import Books
from prizeflow_paypal_emulator.errors import PayPalError
from prizeflow_paypal_emulator.money import reporting_time
from prizeflow_paypal_emulator.settings import DAY_S, EmulatorSettings
from prizeflow_paypal_emulator.signing import generate

KEY = generate()
START = Decimal("1000.00")
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WINDOW = {"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-01-31T23:59:59Z", "fields": "all"}


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def make(**overrides: Any) -> tuple[Books, FakeClock]:
    settings = EmulatorSettings(
        clients={"app": "secret"},
        signing=KEY,
        balances={"USD": START},
        item_fees={"USD": Decimal("0.25")},
        **overrides,
    )
    clock = FakeClock()
    return Books(settings, clock), clock


def pay(books: Books, clock: FakeClock, *receivers: str, batch: str = "b-1") -> None:
    items = [
        {"amount": {"value": "10.00", "currency": "USD"}, "receiver": r, "sender_item_id": f"po-{n}"}
        for n, r in enumerate(receivers)
    ]
    books.create_batch("app", None, {"sender_batch_header": {"sender_batch_id": batch}, "items": items})
    clock.t += 1
    books.run_due(clock.t)


def listed(books: Books, query: dict[str, str] | None = None) -> list[dict[str, Any]]:
    doc = books.search({**WINDOW, "page_size": "500", **(query or {})})
    return [d["transaction_info"] for d in doc["transaction_details"]]


def balance_by_listing(books: Books) -> Decimal:
    return START + sum((Decimal(t["transaction_amount"]["value"]) for t in listed(books)), Decimal(0))


def test_each_money_movement_is_one_line_with_its_t_code_and_the_item_s_transaction_id() -> None:
    books, clock = make()
    pay(books, clock, "ann@example.com", "bob.unclaimed@example.com")
    paid, unclaimed = sorted(books.items.values(), key=lambda i: i.seq)
    clock.t += 30 * DAY_S
    books.run_due(clock.t)  # the unclaimed one comes back
    books.refund(paid.payout_item_id)
    lines = listed(books)
    assert [
        (t["transaction_event_code"], t["transaction_amount"]["value"], t["transaction_status"]) for t in lines
    ] == [
        ("T0001", "-10.00", "V"),
        ("T0104", "-0.25", "S"),
        ("T0001", "-10.00", "V"),
        ("T0104", "-0.25", "V"),
        ("T1114", "10.00", "S"),
        ("T1108", "0.25", "S"),
        ("T1115", "10.00", "S"),
    ]
    assert [t["paypal_reference_id"] for t in lines] == [paid.transaction_id] * 2 + [unclaimed.transaction_id] * 4 + [
        paid.transaction_id
    ]
    assert lines[0]["transaction_id"] == paid.transaction_id
    assert {t["fee_amount"]["value"] for t in lines} == {"0.00"}  # a fee is its own T0104 line
    assert lines[0]["transaction_initiation_date"] == reporting_time(T0 + 1)
    assert lines[0]["transaction_updated_date"] == reporting_time(clock.t)  # turned V by the refund
    assert books.search(WINDOW)["transaction_details"][0]["payer_info"] == {"email_address": "ann@example.com"}
    assert balance_by_listing(books) == books.balance("USD") == START - Decimal("0.25")


def test_the_window_is_at_most_31_days_and_pages_and_filters_apply() -> None:
    books, clock = make()
    pay(books, clock, "a@x.com", "b@x.com", "c@x.com")
    with pytest.raises(PayPalError) as refused:
        books.search({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-02-01T00:00:01Z"})
    doc = refused.value.to_json()
    assert (refused.value.status, doc["name"]) == (400, "INVALID_REQUEST")
    assert doc["details"][0] == {
        "field": "end_date",
        "location": "query",
        "issue": "Date range is greater than 31 days",
        "value": "2026-02-01T00:00:01Z",
    }
    for bad in ({"start_date": "2026-01-01"}, {"end_date": "yesterday"}, {"page_size": "501"}, {"page": "0"}):
        with pytest.raises(PayPalError):
            books.search({**WINDOW, **bad})
    first = books.search({**WINDOW, "page_size": "4"})
    assert (first["page"], first["total_items"], first["total_pages"]) == (1, 6, 2)
    assert len(first["transaction_details"]) == 4
    assert len(books.search({**WINDOW, "page_size": "4", "page": "2"})["transaction_details"]) == 2
    assert [t["transaction_event_code"] for t in listed(books, {"transaction_type": "T0104"})] == ["T0104"] * 3
    offset = books.search({"start_date": "2025-12-31T19:00:00-05:00", "end_date": "2026-01-01T00:00:00.5+00:00"})
    assert offset["total_items"] == 0  # processed one second after the window's end
    assert books.search({**WINDOW, "end_date": "2026-01-01T00:00:01+0000"})["total_items"] == 6


def test_movements_appear_after_the_reporting_delay() -> None:
    books, clock = make(reporting_delay_s=3 * 3600)
    pay(books, clock, "a@x.com")
    assert listed(books) == []
    clock.t += 3 * 3600
    assert len(listed(books)) == 2


@pytest.mark.parametrize(
    ("kind", "extra", "code"),
    [
        ("unrequested", {"amount": 1_500, "asset": "USD", "destination": "x@example.com"}, "T0001"),
        ("missing", {}, None),
        ("amount", {"amount": 2_600}, "T0001"),
        ("destination", {"destination": "else@example.com"}, "T0001"),
        ("duplicate", {}, "T0001"),
        ("reversal", {"amount": 400}, "T1114"),
        ("fee", {"amount": 125}, "T0104"),
    ],
)
def test_each_discrepancy_keeps_the_balance_what_the_listing_says(
    kind: str, extra: dict[str, Any], code: str | None
) -> None:
    books, clock = make()
    pay(books, clock, "ann@example.com")
    (ours,) = books.items.values()
    reference = None if kind == "unrequested" else ours.sender_item_id
    line_id = discrepancies.inject(books, {"kind": kind, "reference": reference, **extra})
    assert balance_by_listing(books) == books.balance("USD")
    if code is None:
        assert line_id is None
        assert listed(books) == []
        assert books.balance("USD") == START
        with pytest.raises(PayPalError):
            books.batch(ours.payout_batch_id)
        return
    line = next(t for t in listed(books) if t["transaction_id"] == line_id)
    assert line["transaction_event_code"] == code
    expected = {
        "unrequested": "-15.00",
        "amount": "-26.00",
        "destination": "-10.00",
        "duplicate": "-10.00",
        "reversal": "4.00",
        "fee": "-1.50",
    }[kind]
    assert line["transaction_amount"]["value"] == expected
    if kind == "destination":
        assert books.search(WINDOW)["transaction_details"][0]["payer_info"] == {"email_address": "else@example.com"}
        assert books.item_json(ours)["payout_item"]["receiver"] == "else@example.com"
    if kind == "duplicate":
        batch = books.batch_json(ours.payout_batch_id, {})
        assert [i["payout_item"]["sender_item_id"] for i in batch["items"]] == ["po-0", "po-0"]


def test_a_whole_reversal_reverses_the_item_and_discrepancies_refuse_what_they_cannot() -> None:
    books, clock = make()
    pay(books, clock, "ann@example.com", "bob.failed@example.com")
    paid, failed = sorted(books.items.values(), key=lambda i: i.seq)
    assert discrepancies.inject(books, {"kind": "reversal", "reference": paid.payout_item_id})
    assert books.item_json(paid)["transaction_status"] == "REVERSED"
    refusals: list[tuple[dict[str, Any], int]] = [
        ({"kind": "reversal", "reference": paid.transaction_id, "amount": 1}, 400),  # nothing left
        ({"kind": "fee", "reference": "po-404", "amount": 1}, 404),
        ({"kind": "teleport", "reference": "po-0"}, 400),
        ({"kind": "fee", "reference": failed.payout_item_id, "amount": 1}, 400),  # never debited
        ({"kind": "fee", "reference": paid.payout_item_id, "amount": "1"}, 400),
        ({"kind": "amount", "reference": paid.payout_item_id, "amount": 5, "asset": "EUR"}, 400),
        ({"kind": "unrequested", "amount": 100, "asset": "USD", "destination": "nobody"}, 400),
    ]
    for body, status in refusals:
        with pytest.raises(discrepancies.DiscrepancyError) as refused:
            discrepancies.inject(books, body)
        assert refused.value.status == status
