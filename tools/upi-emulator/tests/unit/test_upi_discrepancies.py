"""The seven reconciliation discrepancies (ADR 0011) as the statement and the payouts then show them."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_upi_emulator.books import Books
from prizeflow_upi_emulator.discrepancies import KINDS, DiscrepancyError, inject
from prizeflow_upi_emulator.entities import Event
from prizeflow_upi_emulator.rules import Status
from prizeflow_upi_emulator.settings import EmulatorSettings

ACCOUNT = "7878780080316316"


def paid() -> tuple[Books, dict[str, Any], list[Event]]:
    """Books with one processed payout of ₹500 (fees 590) under reference `po_1` and key `key-0001`."""
    now, events = [1_700_000_000.0], list[Event]()
    settings = EmulatorSettings.from_env({"UPI_EMULATOR_KEYS": "k:s", "UPI_EMULATOR_BALANCE": "1000000"})
    books = Books(settings, lambda: now[0], events.append)
    contact = books.create_contact({"name": "Asha Rao"})
    fa = books.create_fund_account(
        {"contact_id": contact.id, "account_type": "vpa", "vpa": {"address": "asha@okicici"}}
    )
    body = {
        "account_number": ACCOUNT,
        "fund_account_id": fa.id,
        "amount": 50_000,
        "currency": "INR",
        "mode": "UPI",
        "purpose": "payout",
        "reference_id": "po_1",
    }
    answer = books.create_payout("k", "key-0001", body)
    now[0] += 2
    books.run_due(now[0])
    events.clear()
    return books, answer, events


def lines(books: Books) -> list[dict[str, Any]]:
    return books.list_transactions({"account_number": ACCOUNT, "count": "100"})


def test_every_kind_is_known() -> None:
    assert {"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"} == KINDS


def test_unrequested_is_a_processed_payout_nobody_asked_for() -> None:
    books, _answer, events = paid()
    line = inject(books, {"kind": "unrequested", "amount": 7_000, "destination": "thief@ybl"})
    [txn] = [t for t in lines(books) if t["id"] == line]
    assert txn["source"]["reference_id"] is None
    assert txn["source"]["status"] == "processed"
    assert books.fund_accounts[txn["source"]["fund_account_id"]].vpa == "thief@ybl"
    assert books.balance() == 1_000_000 - 50_590 - 7_590
    bank = inject(books, {"kind": "unrequested", "amount": 7_000, "destination": "HDFC0000053/765432123456789"})
    assert next(t for t in lines(books) if t["id"] == bank)["source"]["mode"] == "IMPS"
    assert events == []  # the books differ silently


def test_missing_takes_the_payout_and_its_lines_away() -> None:
    books, answer, _events = paid()
    assert inject(books, {"kind": "missing", "reference": "key-0001"}) is None
    assert [t["source"]["entity"] for t in lines(books)] == ["bank_transfer"]
    assert books.balance() == 1_000_000
    assert books.list_payouts({"account_number": ACCOUNT}) == []
    with pytest.raises(DiscrepancyError) as gone:
        inject(books, {"kind": "fee", "reference": answer["id"], "amount": 1})
    assert gone.value.status == 404


def test_amount_destination_and_fee_change_the_payouts_line() -> None:
    books, answer, _events = paid()
    line = inject(books, {"kind": "amount", "reference": "po_1", "amount": 60_000})
    assert line is not None
    [txn] = [t for t in lines(books) if t["id"] == line]
    assert (txn["source"]["amount"], txn["debit"]) == (60_000, 60_590)
    assert inject(books, {"kind": "destination", "reference": "po_1", "destination": "other@paytm"}) == line
    assert books.fund_accounts[books.payout(answer["id"]).fund_account_id].vpa == "other@paytm"
    assert inject(books, {"kind": "fee", "reference": "po_1", "amount": 118}) == f"{line}:fee"
    assert books.payout(answer["id"]).fees == 708
    assert books.balance() == 1_000_000 - 60_000 - 708


def test_duplicate_is_a_second_debit_under_the_same_reference() -> None:
    books, answer, _events = paid()
    line = inject(books, {"kind": "duplicate", "reference": "po_1"})
    twins = books.list_payouts({"account_number": ACCOUNT, "reference_id": "po_1"})
    assert len(twins) == 2
    assert {p.id for p in twins} >= {answer["id"]}
    assert next(t for t in lines(books) if t["id"] == line)["source"]["id"] != answer["id"]
    assert books.balance() == 1_000_000 - 2 * 50_590


def test_reversal_partial_then_whole_without_a_webhook() -> None:
    books, answer, events = paid()
    part = inject(books, {"kind": "reversal", "reference": "po_1", "amount": 20_000})
    assert books.payout(answer["id"]).status is Status.PROCESSED
    rest = inject(books, {"kind": "reversal", "reference": "po_1"})
    assert part != rest
    credits = [t for t in lines(books) if t["source"]["entity"] == "reversal"]
    assert sorted(t["credit"] for t in credits) == [20_000, 30_590]
    assert [t["source"]["fees"] for t in credits if t["credit"] == 30_590] == [590]
    assert books.payout(answer["id"]).status is Status.REVERSED
    assert books.balance() == 1_000_000
    assert events == []
    with pytest.raises(DiscrepancyError, match="at most what has not come back"):
        inject(books, {"kind": "reversal", "reference": "po_1", "amount": 1})


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "lost"}, 400),
        ({"kind": "fee", "amount": 1}, 400),
        ({"kind": "fee", "reference": "nope", "amount": 1}, 404),
        ({"kind": "fee", "reference": "po_1", "amount": 0}, 400),
        ({"kind": "unrequested", "amount": 100}, 400),
        ({"kind": "unrequested", "amount": 100, "destination": "nowhere"}, 400),
        ({"kind": "amount", "reference": "po_1", "amount": 100, "asset": "USD"}, 400),
    ],
)
def test_a_discrepancy_that_cannot_be_is_refused(body: dict[str, Any], status: int) -> None:
    books, _answer, _events = paid()
    with pytest.raises(DiscrepancyError) as refused:
        inject(books, body)
    assert refused.value.status == status
