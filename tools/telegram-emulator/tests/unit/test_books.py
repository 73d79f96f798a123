"""The emulated bot's books, rule by rule: gifts debit the balance, refunds only of a real prior charge, once."""

from __future__ import annotations

import pytest

from prizeflow_telegram_emulator.state import Books, BotApiError, Gift


@pytest.fixture
def books() -> Books:
    return Books(
        balance=100, gifts={"g15": Gift("g15", 15), "rare": Gift("rare", 50, total_count=1, remaining_count=1)}
    )


def test_a_gift_debits_the_price_and_records_an_outgoing_gift_purchase(books: Books) -> None:
    tx = books.send_gift(42, "g15", text="well played", pay_for_upgrade=False)
    assert books.balance == 85
    [api] = books.page(0, 100)
    assert api["id"] == tx.id
    assert api["amount"] == 15
    assert api["receiver"]["transaction_type"] == "gift_purchase"
    assert api["receiver"]["user"]["id"] == 42
    assert api["receiver"]["gift"]["star_count"] == 15
    assert "source" not in api


@pytest.mark.parametrize(
    ("setup", "call", "status", "description"),
    [
        (None, ("nope", 42), 400, "Bad Request: STARGIFT_INVALID"),
        ("deleted", ("g15", 42), 400, "Bad Request: USER_ID_INVALID"),
        ("blocked", ("g15", 42), 403, "Forbidden: bot was blocked by the user"),
        (None, ("g15", -1), 400, "Bad Request: USER_ID_INVALID"),
    ],
)
def test_refused_gifts_move_nothing(
    books: Books, setup: str | None, call: tuple[str, int], status: int, description: str
) -> None:
    if setup is not None:
        books.user(42).state = setup
    with pytest.raises(BotApiError) as err:
        books.send_gift(call[1], call[0], text=None, pay_for_upgrade=False)
    assert (err.value.status, err.value.description) == (status, description)
    assert books.balance == 100
    assert books.transactions == []


def test_a_balance_too_low_and_a_sold_out_gift_are_refused(books: Books) -> None:
    books.send_gift(1, "rare", text=None, pay_for_upgrade=False)
    with pytest.raises(BotApiError, match="STARGIFT_USAGE_LIMITED"):
        books.send_gift(2, "rare", text=None, pay_for_upgrade=False)
    books.balance = 10
    with pytest.raises(BotApiError, match="BALANCE_TOO_LOW"):
        books.send_gift(2, "g15", text=None, pay_for_upgrade=False)
    assert books.balance == 10


def test_a_refund_needs_a_real_prior_charge_of_that_user_and_happens_once(books: Books) -> None:
    charge = books.pay(7, 30)
    assert books.balance == 130
    with pytest.raises(BotApiError, match="CHARGE_NOT_FOUND"):
        books.refund(8, charge.id)  # another user's charge
    with pytest.raises(BotApiError, match="CHARGE_NOT_FOUND"):
        books.refund(7, "charge-that-never-was")
    refund = books.refund(7, charge.id)
    assert refund.id == charge.id  # a refund carries its charge's id, as Telegram's do
    assert books.balance == 100
    with pytest.raises(BotApiError, match="CHARGE_ALREADY_REFUNDED"):
        books.refund(7, charge.id)
    assert books.balance == 100


def test_transactions_page_in_chronological_order(books: Books) -> None:
    ids = [books.send_gift(n, "g15", text=None, pay_for_upgrade=False).id for n in range(1, 6)]
    assert [t["id"] for t in books.page(0, 2)] == ids[:2]
    assert [t["id"] for t in books.page(4, 100)] == ids[4:]
    with pytest.raises(BotApiError):
        books.page(0, 101)


def test_a_gift_refund_credits_the_bot_once_as_an_incoming_transaction_with_the_purchases_id(books: Books) -> None:
    purchase = books.send_gift(42, "g15", text=None, pay_for_upgrade=False)
    books.refund_gift(purchase.id)
    assert books.balance == 100
    [_, refund] = books.page(0, 100)
    assert refund["id"] == purchase.id
    assert refund["source"]["transaction_type"] == "gift_purchase"
    assert "receiver" not in refund
    with pytest.raises(BotApiError, match="TRANSACTION_ALREADY_REFUNDED"):
        books.refund_gift(purchase.id)
    with pytest.raises(BotApiError, match="TRANSACTION_NOT_FOUND"):
        books.refund_gift("gift-none")
    assert books.balance == 100
