"""The books without I/O: tokens on the clock, batches accepted or refused as PayPal refuses them (validation, a reused
sender_batch_id, insufficient funds, PayPal-Request-Id), items moved by the clock into each state the receiver rules
choose, the operator's levers, batch statuses, the money each move makes and the webhook events it emits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from prizeflow_paypal_emulator.books import Books
from prizeflow_paypal_emulator.entities import Event
from prizeflow_paypal_emulator.errors import OAuthError, PayPalError
from prizeflow_paypal_emulator.rules import IllegalTransitionError, Outcome, Rule, Status, parse_rules
from prizeflow_paypal_emulator.settings import DAY_S, EmulatorSettings
from prizeflow_paypal_emulator.signing import generate

KEY = generate()
START = Decimal("1000.00")
FEE = Decimal("0.25")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_767_225_600.0  # 2026-01-01T00:00:00Z

    def __call__(self) -> float:
        return self.t


def make(**overrides: Any) -> tuple[Books, FakeClock, list[Event]]:
    settings = EmulatorSettings(
        clients={"app": "secret"},
        signing=KEY,
        balances={"USD": START, "JPY": Decimal(100_000)},
        item_fees={"USD": FEE},
        **overrides,
    )
    clock, events = FakeClock(), list[Event]()
    return Books(settings, clock, events.append), clock, events


def body(batch: str = "b-1", *items: dict[str, Any]) -> dict[str, Any]:
    return {
        "sender_batch_header": {"sender_batch_id": batch, "email_subject": "You have a prize"},
        "items": list(items) or [item()],
    }


def item(receiver: str = "ann@example.com", value: str = "12.34", key: str = "po-1", **extra: Any) -> dict[str, Any]:
    return {
        "recipient_type": extra.pop("recipient_type", "EMAIL"),
        "amount": {"value": value, "currency": extra.pop("currency", "USD")},
        "receiver": receiver,
        "sender_item_id": key,
        "note": "Your prize",
        **extra,
    }


def processed(books: Books, clock: FakeClock, seconds: float = 1) -> None:
    clock.t += seconds
    books.run_due(clock.t)


def only_item(books: Books) -> dict[str, Any]:
    (found,) = books.items.values()
    return books.item_json(found)


def event_types(events: list[Event]) -> list[str]:
    return [e.event_type for e in events]


def test_a_token_authenticates_until_it_expires_on_the_clock() -> None:
    books, clock, _ = make(token_ttl_s=60)
    issued = books.issue_token("app")
    assert (issued["token_type"], issued["expires_in"], issued["app_id"]) == ("Bearer", 60, "APP-80W284485P519543T")
    assert books.authenticate(f"Bearer {issued['access_token']}") == "app"
    for header in ("", "Basic abc", "Bearer unknown"):
        with pytest.raises(OAuthError) as refused:
            books.authenticate(header)
        assert (refused.value.status, refused.value.error) == (401, "invalid_token")
    clock.t += 60
    with pytest.raises(OAuthError):
        books.authenticate(f"Bearer {issued['access_token']}")


def test_a_batch_is_pending_then_its_item_succeeds_and_is_debited_with_its_fee() -> None:
    books, clock, events = make()
    answer = books.create_batch("app", None, body())
    header = answer["batch_header"]
    assert header["batch_status"] == "PENDING"
    assert header["sender_batch_header"] == {"sender_batch_id": "b-1", "email_subject": "You have a prize"}
    assert answer["links"][0]["href"].endswith(f"/v1/payments/payouts/{header['payout_batch_id']}")
    assert (books.balance("USD"), books.available("USD")) == (START, START - Decimal("12.59"))
    assert only_item(books)["transaction_status"] == "PENDING"
    assert "transaction_id" not in only_item(books)
    processed(books, clock)
    shown = only_item(books)
    assert shown["transaction_status"] == "SUCCESS"
    assert shown["payout_item_fee"] == {"currency": "USD", "value": "0.25"}
    assert shown["payout_item"]["amount"] == {"value": "12.34", "currency": "USD"}
    assert shown["payout_item"]["sender_item_id"] == "po-1"
    assert shown["sender_batch_id"] == "b-1"
    assert len(shown["transaction_id"]) == 17
    assert books.balance("USD") == books.available("USD") == START - Decimal("12.59")
    assert [(ln.code, ln.value, ln.status) for ln in books.lines.values()] == [
        ("T0001", Decimal("-12.34"), "S"),
        ("T0104", -FEE, "S"),
    ]
    assert event_types(events) == [
        "PAYMENT.PAYOUTSBATCH.PROCESSING",
        "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
        "PAYMENT.PAYOUTSBATCH.SUCCESS",
    ]
    batch = books.batch_json(header["payout_batch_id"], {"total_required": "true"})
    assert batch["batch_header"]["batch_status"] == "SUCCESS"
    assert batch["batch_header"]["amount"] == {"currency": "USD", "value": "12.34"}
    assert batch["batch_header"]["fees"] == {"currency": "USD", "value": "0.25"}
    assert (batch["total_items"], batch["total_pages"]) == (1, 1)
    event = json.loads(events[1].body)
    assert event["id"].startswith("WH-")
    assert (event["resource_type"], event["event_version"]) == ("payouts_item", "1.0")
    assert event["resource"] == shown


@pytest.mark.parametrize(
    ("receiver", "recipient_type", "status", "error", "event", "paid"),
    [
        ("ann@example.com", "EMAIL", "SUCCESS", None, "PAYMENT.PAYOUTS-ITEM.SUCCEEDED", True),
        (
            "ann.unclaimed@example.com",
            "EMAIL",
            "UNCLAIMED",
            "RECEIVER_UNREGISTERED",
            "PAYMENT.PAYOUTS-ITEM.UNCLAIMED",
            True,
        ),
        ("ann.onhold@example.com", "EMAIL", "ONHOLD", None, "PAYMENT.PAYOUTS-ITEM.HELD", True),
        ("ann.blocked@example.com", "EMAIL", "BLOCKED", "REGULATORY_BLOCKED", "PAYMENT.PAYOUTS-ITEM.BLOCKED", False),
        ("ann.failed@example.com", "EMAIL", "FAILED", "RECEIVER_ACCOUNT_LOCKED", "PAYMENT.PAYOUTS-ITEM.FAILED", False),
        ("ann.denied@example.com", "EMAIL", "FAILED", "RISK_DECLINE", "PAYMENT.PAYOUTS-ITEM.DENIED", False),
        ("+14155559901", "PHONE", "UNCLAIMED", "RECEIVER_UNREGISTERED", "PAYMENT.PAYOUTS-ITEM.UNCLAIMED", True),
        ("4155559905", "PHONE", "FAILED", "RECEIVER_ACCOUNT_LOCKED", "PAYMENT.PAYOUTS-ITEM.FAILED", False),
        ("ONHOLD0000001", "PAYPAL_ID", "ONHOLD", None, "PAYMENT.PAYOUTS-ITEM.HELD", True),
        ("BLOCKED000001", "PAYPAL_ID", "BLOCKED", "REGULATORY_BLOCKED", "PAYMENT.PAYOUTS-ITEM.BLOCKED", False),
    ],
)
def test_the_receiver_chooses_the_outcome(
    receiver: str, recipient_type: str, status: str, error: str | None, event: str, paid: bool
) -> None:
    books, clock, events = make()
    books.create_batch("app", None, body("b-1", item(receiver, recipient_type=recipient_type)))
    processed(books, clock)
    shown = only_item(books)
    assert shown["transaction_status"] == status
    assert shown.get("errors", {}).get("name") == error
    assert event in event_types(events)
    assert books.balance("USD") == (START - Decimal("12.59") if paid else START)
    assert books.available("USD") == books.balance("USD")
    assert ("transaction_id" in shown) == paid


def test_a_pending_item_keeps_its_batch_processing_until_released() -> None:
    books, clock, events = make()
    books.create_batch("app", None, body("b-1", item("ann.pending@example.com"), item("bob@example.com", key="po-2")))
    processed(books, clock)
    batch_id = next(iter(books.batches))
    assert books.batches[batch_id].status == "PROCESSING"
    pending = next(i for i in books.items.values() if i.receiver.startswith("ann"))
    assert (pending.status, books.available("USD")) == (Status.PENDING, START - 2 * Decimal("12.59"))
    books.release(pending.payout_item_id)
    assert (pending.status, books.batches[batch_id].status) == (Status.SUCCESS, "SUCCESS")
    assert event_types(events)[-1] == "PAYMENT.PAYOUTSBATCH.SUCCESS"
    assert books.balance("USD") == START - 2 * Decimal("12.59")


def test_a_batch_where_nothing_is_paid_is_denied() -> None:
    books, clock, events = make()
    books.create_batch("app", None, body("b-1", item("a.failed@example.com"), item("b.blocked@x.com", key="p2")))
    processed(books, clock)
    assert next(iter(books.batches.values())).status == "DENIED"
    assert event_types(events)[-1] == "PAYMENT.PAYOUTSBATCH.DENIED"
    assert books.balance("USD") == books.available("USD") == START


def test_an_unclaimed_item_is_returned_after_thirty_days_with_its_fee() -> None:
    books, clock, events = make()
    books.create_batch("app", None, body("b-1", item("ann.unclaimed@example.com")))
    processed(books, clock)
    processed(books, clock, 29 * DAY_S)
    assert only_item(books)["transaction_status"] == "UNCLAIMED"
    processed(books, clock, DAY_S)
    shown = only_item(books)
    assert (shown["transaction_status"], shown["payout_item_fee"]["value"]) == ("RETURNED", "0.00")
    assert books.balance("USD") == START
    assert [(ln.code, ln.value, ln.status) for ln in books.lines.values()] == [
        ("T0001", Decimal("-12.34"), "V"),
        ("T0104", -FEE, "V"),
        ("T1114", Decimal("12.34"), "S"),
        ("T1108", FEE, "S"),
    ]
    returned = json.loads(events[-1].body)
    assert (returned["event_type"], returned["resource"]["transaction_status"]) == (
        "PAYMENT.PAYOUTS-ITEM.RETURNED",
        "RETURNED",
    )


def test_only_an_unclaimed_item_is_cancelled_and_only_once() -> None:
    books, clock, events = make()
    books.create_batch("app", None, body("b-1", item("a.unclaimed@example.com"), item("b@example.com", key="p2")))
    processed(books, clock)
    unclaimed, paid = sorted(books.items.values(), key=lambda i: i.seq)
    with pytest.raises(PayPalError) as wrong:
        books.cancel(paid.payout_item_id)
    assert (wrong.value.status, wrong.value.name) == (400, "ITEM_INCORRECT_STATUS")
    assert books.cancel(unclaimed.payout_item_id).status is Status.RETURNED
    assert event_types(events)[-1] == "PAYMENT.PAYOUTS-ITEM.CANCELED"
    with pytest.raises(PayPalError) as again:
        books.cancel(unclaimed.payout_item_id)
    assert again.value.name == "ITEM_ALREADY_CANCELLED"
    with pytest.raises(PayPalError) as unknown:
        books.cancel("NOSUCHITEM000")
    assert (unknown.value.status, unknown.value.name) == (404, "INVALID_RESOURCE_ID")
    assert books.balance("USD") == START - Decimal("12.59")


def test_levers_refund_reverse_release_and_fail_with_the_money_they_move() -> None:
    books, clock, events = make()
    receivers = ["a@x.com", "b@x.com", "c.onhold@x.com", "d.unclaimed@x.com", "e.pending@x.com", "f.onhold@x.com"]
    books.create_batch("app", None, body("b-1", *(item(r, key=f"k{n}") for n, r in enumerate(receivers))))
    processed(books, clock)
    a, b, c, d, e, f = sorted(books.items.values(), key=lambda i: i.seq)
    assert books.refund(a.payout_item_id).status is Status.REFUNDED
    assert books.reverse(b.payout_item_id).status is Status.REVERSED
    assert books.release(c.payout_item_id).status is Status.SUCCESS
    assert books.release(d.payout_item_id).status is Status.SUCCESS  # claimed
    assert books.fail(e.payout_item_id, "RECEIVER_UNCONFIRMED").shown_error == "RECEIVER_UNCONFIRMED"
    assert books.fail(f.payout_item_id).status is Status.FAILED  # a held one: its money back
    codes = [ln.code for ln in books.lines.values() if ln.value > 0]
    assert codes == ["T1115", "T1114", "T1114", "T1108"]
    # a and b keep their fees (the receiver refunded, PayPal reversed); c and d paid; e never; f gave all back
    assert books.balance("USD") == START - 4 * FEE - 2 * Decimal("12.34")
    assert "PAYMENT.PAYOUTS-ITEM.REFUNDED" in event_types(events)
    assert "PAYMENT.PAYOUTS-ITEM.REVERSED" in event_types(events)
    with pytest.raises(IllegalTransitionError):
        books.refund(e.payout_item_id)
    with pytest.raises(IllegalTransitionError):
        books.release(a.payout_item_id)


def test_refusals_make_nothing_and_name_what_is_wrong() -> None:
    books, _, events = make()
    for bad, fields in [
        (body("b-1", item(value="12.3")), ["items[0].amount.value"]),
        (body("b-1", item(value="12")), ["items[0].amount.value"]),
        (body("b-1", item(value="100.00", currency="JPY")), ["items[0].amount.value"]),
        (body("b-1", item(value="0.00")), ["items[0].amount.value"]),
        (body("b-1", item(currency="XXX")), ["items[0].amount.currency"]),
        (body("b-1", item("not-an-email")), ["items[0].receiver"]),
        (body("b-1", item("ann@example.com", recipient_type="PHONE")), ["items[0].receiver"]),
        (body("b-1", item(key="k" * 64)), ["items[0].sender_item_id"]),
        ({"items": [item()]}, ["sender_batch_header"]),
        ({"sender_batch_header": {}, "items": []}, ["items"]),
        (body("b-1", item(value="1.5"), item("x", key="p2")), ["items[0].amount.value", "items[1].receiver"]),
    ]:
        with pytest.raises(PayPalError) as refused:
            books.create_batch("app", None, bad)
        assert (refused.value.status, refused.value.name) == (400, "VALIDATION_ERROR")
        assert [d["field"] for d in refused.value.details] == fields
        assert refused.value.to_json()["details"][0]["location"] == "body"
    with pytest.raises(PayPalError) as malformed:
        books.create_batch("app", None, [])
    assert malformed.value.name == "MALFORMED_REQUEST"
    assert books.created == 0
    assert (books.batches, events) == ({}, [])
    assert books.create_batch("app", None, body("b-1", item(value="1200", currency="JPY")))


def test_insufficient_funds_is_a_422_and_pays_nothing() -> None:
    books, clock, _ = make()
    with pytest.raises(PayPalError) as refused:
        books.create_batch("app", None, body("b-1", item(value="999.80"), item(value="0.10", key="p2")))
    assert (refused.value.status, refused.value.name) == (422, "INSUFFICIENT_FUNDS")
    assert "details" not in refused.value.to_json()
    books.create_batch("app", None, body("b-2", item(value="999.75")))  # exactly the balance with the fee
    with pytest.raises(PayPalError):  # reserved by the pending batch
        books.create_batch("app", None, body("b-3", item(value="0.01")))
    processed(books, clock)
    assert books.balance("USD") == 0
    assert books.created == 1


def test_a_reused_sender_batch_id_is_refused_with_a_link_to_the_first_batch_for_thirty_days() -> None:
    books, clock, _ = make()
    first = books.create_batch("app", None, body("b-1"))["batch_header"]["payout_batch_id"]
    with pytest.raises(PayPalError) as refused:
        books.create_batch("app", None, body("b-1", item(value="1.00")))
    doc = refused.value.to_json()
    assert (refused.value.status, doc["name"], doc["message"]) == (400, "USER_BUSINESS_ERROR", "User business error.")
    (problem,) = doc["details"]
    assert (problem["field"], problem["issue"]) == (
        "SENDER_BATCH_ID",
        "Batch with given sender_batch_id already exists",
    )
    assert problem["link"][0]["href"].endswith(f"/v1/payments/payouts/{first}")
    clock.t += 31 * DAY_S
    assert books.create_batch("app", None, body("b-1"))["batch_header"]["payout_batch_id"] != first


def test_the_same_request_id_and_body_answer_the_same_batch_another_body_is_refused() -> None:
    books, clock, _ = make()
    first = books.create_batch("app", "req-1", body("b-1"))
    processed(books, clock)
    again = books.create_batch("app", "req-1", body("b-1"))
    assert again["batch_header"]["payout_batch_id"] == first["batch_header"]["payout_batch_id"]
    assert again["batch_header"]["batch_status"] == "SUCCESS"  # its latest status, as PayPal documents
    with pytest.raises(PayPalError) as refused:
        books.create_batch("app", "req-1", body("b-2"))
    assert (refused.value.status, refused.value.name) == (400, "DUPLICATE_REQUEST_ID")
    other_app = books.create_batch("other", "req-1", body("b-3"))  # request ids are the app's own
    assert other_app["batch_header"]["payout_batch_id"] != first["batch_header"]["payout_batch_id"]
    assert books.created == 2


def test_batch_pages_and_rules_parse() -> None:
    books, _, _ = make()
    made = books.create_batch("app", None, body("b-1", *(item(f"p{n}@x.com", key=f"k{n}") for n in range(5))))
    batch_id = made["batch_header"]["payout_batch_id"]
    second = books.batch_json(batch_id, {"page": "2", "page_size": "2", "total_required": "true"})
    assert [i["payout_item"]["sender_item_id"] for i in second["items"]] == ["k2", "k3"]
    assert (second["total_items"], second["total_pages"]) == (5, 3)
    assert {ln["rel"] for ln in second["links"]} == {"self", "next", "previous"}
    assert "items" not in books.batch_json(batch_id, {"fields": "batch_header"})
    with pytest.raises(PayPalError) as bad:
        books.batch_json(batch_id, {"page_size": "1001"})
    assert bad.value.name == "VALIDATION_ERROR"
    with pytest.raises(PayPalError):
        books.batch_json("NOSUCHBATCH00", {})
    assert parse_rules([{"receiver": "*@vip.example", "outcome": "ONHOLD"}]) == [Rule("*@vip.example", Outcome.ONHOLD)]
    wrongs: list[Any] = [
        {"receiver": ""},
        {"receiver": "*", "outcome": "LOST"},
        {"receiver": "*", "error": "lower"},
        [],
    ]
    for wrong in wrongs:
        with pytest.raises(ValueError, match=r"rule|receiver|outcome|error"):
            Rule.parse(wrong)
