"""Each injected discrepancy as getStarTransactions then shows it, and the refusals of what cannot be injected."""

from __future__ import annotations

from typing import Any

import pytest

from prizeflow_telegram_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_telegram_emulator.state import Books, Gift


@pytest.fixture
def books() -> Books:
    return Books(balance=1000, gifts={"g15": Gift("g15", 15)})


def _listed(books: Books) -> list[dict[str, Any]]:
    return books.page(0, 100)


def test_amount_destination_and_missing_change_or_drop_the_purchase(books: Books) -> None:
    a = books.send_gift(42, "g15", text=None, pay_for_upgrade=False)
    b = books.send_gift(43, "g15", text=None, pay_for_upgrade=False)
    assert inject(books, {"kind": "amount", "reference": a.id, "amount": 25}, 100) == a.id
    assert inject(books, {"kind": "destination", "reference": a.id, "destination": "77"}, 100) == a.id
    [row] = [t for t in _listed(books) if t["id"] == a.id]
    assert (row["amount"], row["receiver"]["user"]["id"]) == (25, 77)
    assert inject(books, {"kind": "missing", "reference": b.id}, 100) is None
    assert [t["id"] for t in _listed(books)] == [a.id]
    assert books.balance == 1000 - 15


def test_duplicate_unrequested_reversal_and_fee_append_what_telegram_would_list(books: Books) -> None:
    a = books.send_gift(42, "g15", text=None, pay_for_upgrade=False)
    twin = inject(books, {"kind": "duplicate", "reference": a.id}, 100)
    stray = inject(books, {"kind": "unrequested", "amount": 50, "asset": "XTR", "destination": "99"}, 101)
    assert inject(books, {"kind": "reversal", "reference": a.id}, 102) == f"{a.id}:refund"
    fee = inject(books, {"kind": "fee", "reference": a.id, "amount": 3}, 103)
    rows = _listed(books)
    assert [t["id"] for t in rows] == [a.id, twin, stray, a.id, fee]
    assert (rows[1]["amount"], rows[1]["receiver"]["user"]["id"], rows[1]["receiver"]["gift"]["id"]) == (15, 42, "g15")
    assert (rows[2]["amount"], rows[2]["receiver"]["user"]["id"], rows[2]["date"]) == (50, 99, 101)
    assert (rows[3]["source"]["transaction_type"], rows[3]["date"]) == ("gift_purchase", 102)  # the refund
    assert rows[4]["receiver"] == {"type": "telegram_api", "request_count": 1}
    assert books.balance == 1000 - 15 - 15 - 50 + 15 - 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "nope"}, 400),
        ({"kind": "missing", "reference": "gift999"}, 404),
        ({"kind": "reversal", "reference": "REF", "amount": 5}, 400),  # never part of a purchase
        ({"kind": "unrequested", "amount": 5, "asset": "USDC", "destination": "1"}, 400),
        ({"kind": "destination", "reference": "REF", "destination": "not-a-user"}, 400),
    ],
)
def test_refused_discrepancies(books: Books, body: dict[str, Any], status: int) -> None:
    a = books.send_gift(42, "g15", text=None, pay_for_upgrade=False)
    body = {k: (a.id if v == "REF" else v) for k, v in body.items()}
    with pytest.raises(DiscrepancyError) as err:
        inject(books, body, 100)
    assert err.value.status == status
