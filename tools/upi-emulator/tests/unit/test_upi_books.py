"""The books without I/O: every payout state and move, idempotency refusals, validations, low balance, the statement
and its money, rules, settings and the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prizeflow_upi_emulator.books import Books
from prizeflow_upi_emulator.entities import Event
from prizeflow_upi_emulator.errors import RazorpayError
from prizeflow_upi_emulator.rules import (
    DEFAULT_RULES,
    EVENTS,
    TRANSITIONS,
    IllegalTransitionError,
    Rule,
    Status,
    check,
    parse_rules,
)
from prizeflow_upi_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_upi_emulator.signing import sign

ACCOUNT = "7878780080316316"
START = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def make(env: dict[str, str] | None = None) -> tuple[Books, Clock, list[Event]]:
    clock, events = Clock(), list[Event]()
    settings = EmulatorSettings.from_env({"UPI_EMULATOR_KEYS": "k:s", "UPI_EMULATOR_BALANCE": "1000000", **(env or {})})
    return Books(settings, clock, events.append), clock, events


def vpa_account(books: Books, address: str = "asha@okicici") -> str:
    contact = books.create_contact({"name": "Asha Rao", "type": "customer"})
    return books.create_fund_account({"contact_id": contact.id, "account_type": "vpa", "vpa": {"address": address}}).id


def bank_account(books: Books, number: str = "765432123456789") -> str:
    contact = books.create_contact({"name": "Ravi Kumar"})
    body = {"name": "Ravi Kumar", "ifsc": "HDFC0000053", "account_number": number}
    return books.create_fund_account(
        {"contact_id": contact.id, "account_type": "bank_account", "bank_account": body}
    ).id


def payout_body(fa: str, amount: int = 50_000, mode: str = "UPI", **extra: Any) -> dict[str, Any]:
    return {
        "account_number": ACCOUNT,
        "fund_account_id": fa,
        "amount": amount,
        "currency": "INR",
        "mode": mode,
        "purpose": "payout",
        **extra,
    }


def pay(books: Books, fa: str, key: str = "key-0001", **extra: Any) -> dict[str, Any]:
    return books.create_payout("k", key, payout_body(fa, **extra))


def names(events: list[Event]) -> list[str]:
    return [e.event for e in events]


# -- the life cycle, state by state -----------------------------------------------------------------------------------
def test_the_transition_table_is_razorpayx_life_cycle() -> None:
    assert TRANSITIONS[Status.QUEUED] == {Status.PROCESSING, Status.CANCELLED, Status.FAILED}
    assert TRANSITIONS[Status.PROCESSED] == {Status.REVERSED}  # a bank return, days later
    for final in (Status.REVERSED, Status.FAILED, Status.REJECTED, Status.CANCELLED):
        assert TRANSITIONS[final] == frozenset()
    with pytest.raises(IllegalTransitionError):
        check(Status.PROCESSED, Status.FAILED)
    assert EVENTS[Status.PROCESSING] == "payout.initiated"
    assert EVENTS[Status.CANCELLED] is None


def test_processing_then_processed_debits_amount_and_fees_once() -> None:
    books, clock, events = make()
    answer = pay(books, vpa_account(books))
    assert answer["status"] == "processing"
    assert (answer["fees"], answer["tax"]) == (590, 90)  # ₹5 + 18% GST, as in RazorpayX's samples
    assert books.balance() == 1_000_000 - 50_590
    clock.t += 1
    books.run_due(clock.t)
    payout = books.payout(answer["id"])
    assert payout.status is Status.PROCESSED
    assert payout.utr is not None
    assert len(payout.utr) == 12
    assert payout.status_details == {
        "description": "Payout is processed and the money has been credited into the beneficiary account.",
        "source": "beneficiary_bank",
        "reason": "payout_processed",
    }
    assert names(events) == ["payout.initiated", "payout.processed"]
    assert books.balance() == 1_000_000 - 50_590


def test_failed_and_reversed_give_the_debit_back_fees_included() -> None:
    books, clock, events = make()
    failed = pay(books, vpa_account(books, "a.failed@ybl"), key="key-fail")
    reversed_ = pay(books, vpa_account(books, "b.reversed@ybl"), key="key-rev")
    clock.t += 1
    books.run_due(clock.t)
    assert books.payout(failed["id"]).status is Status.FAILED
    assert books.payout(failed["id"]).status_details["reason"] == "beneficiary_psp_offline"  # type: ignore[index]
    assert books.payout(reversed_["id"]).status is Status.REVERSED
    assert books.balance() == 1_000_000
    kinds = [t.kind for t, _ in books.statement()]
    assert kinds == ["bank_transfer", "payout", "payout", "reversal", "reversal"]
    assert set(names(events)) == {"payout.initiated", "payout.failed", "payout.reversed"}


def test_a_processed_payout_is_reversed_hours_later_dated_when_it_was_due() -> None:
    books, clock, events = make()
    answer = pay(books, vpa_account(books, "c.returned@ybl"))
    clock.t += 1
    books.run_due(clock.t)
    assert books.payout(answer["id"]).status is Status.PROCESSED
    clock.t += 3 * 3600 - 2
    books.run_due(clock.t)
    assert books.payout(answer["id"]).status is Status.PROCESSED  # not yet
    clock.t += 10
    books.run_due(clock.t)
    payout = books.payout(answer["id"])
    assert payout.status is Status.REVERSED
    assert payout.status_details["reason"] == "beneficiary_bank_rejected"  # type: ignore[index]
    reversal = next(t for t, _ in books.statement() if t.kind == "reversal")
    assert reversal.created_at == int(START + 1 + 3 * 3600)
    assert reversal.credit == 50_590
    assert names(events)[-2:] == ["payout.processed", "payout.reversed"]


def test_one_clock_jump_runs_every_step_in_order() -> None:
    books, clock, events = make()
    pay(books, vpa_account(books, "d.returned@ybl"))
    clock.t += 5 * 3600
    assert books.run_due(clock.t) == 2
    assert names(events) == ["payout.initiated", "payout.processed", "payout.reversed"]


def test_approval_workflow_pending_then_approved_or_rejected() -> None:
    books, clock, events = make()
    waiting = pay(books, vpa_account(books, "e.pending@ybl"), key="key-pend")
    rejected = pay(books, vpa_account(books, "f.rejected@ybl"), key="key-rejd")
    assert (waiting["status"], rejected["status"]) == ("pending", "pending")
    assert waiting["status_details"]["reason"] == "pending_approval"
    assert books.balance() == 1_000_000  # nothing leaves before approval
    clock.t += 2
    books.run_due(clock.t)
    assert books.payout(rejected["id"]).status is Status.REJECTED
    assert books.payout(waiting["id"]).status is Status.PENDING
    books.approve(waiting["id"])
    assert books.payout(waiting["id"]).status is Status.PROCESSING
    with pytest.raises(ValueError, match="not pending"):
        books.reject(waiting["id"])
    assert names(events).count("payout.pending") == 2
    assert "payout.rejected" in names(events)


def test_deemed_success_stays_processing_until_settled() -> None:
    books, clock, events = make()
    answer = pay(books, vpa_account(books, "g.stuck@ybl"))
    clock.t += 3600
    books.run_due(clock.t)
    payout = books.payout(answer["id"])
    assert payout.status is Status.PROCESSING
    assert payout.status_details["reason"] == "beneficiary_bank_confirmation_pending"  # type: ignore[index]
    assert names(events)[-1] == "payout.updated"
    books.settle(answer["id"], "reversed", "npci_beneficiary_timeout")
    assert books.payout(answer["id"]).status is Status.REVERSED
    assert books.balance() == 1_000_000
    with pytest.raises(IllegalTransitionError):
        books.settle(answer["id"], "processed", None)


def test_low_balance_queues_then_a_top_up_processes_fifo() -> None:
    books, _clock, events = make({"UPI_EMULATOR_BALANCE": "60000"})
    fa = vpa_account(books)
    first = pay(books, fa, key="key-q1", queue_if_low_balance=True)  # fits: 50_590
    second = pay(books, fa, key="key-q2", queue_if_low_balance=True)
    third = pay(books, fa, key="key-q3", amount=100, queue_if_low_balance=True)  # small: fits in what is left
    assert (first["status"], second["status"], third["status"]) == ("processing", "queued", "processing")
    assert second["status_details"]["reason"] == "low_balance"
    assert second["fees"] == 0  # fees only once processing
    books.top_up(100_000)
    assert books.payout(second["id"]).status is Status.PROCESSING
    assert "payout.queued" in names(events)


def test_low_balance_without_queueing_fails_or_is_refused() -> None:
    books, _clock, events = make({"UPI_EMULATOR_BALANCE": "1000"})
    failed = pay(books, vpa_account(books))
    assert failed["status"] == "failed"
    assert failed["status_details"]["reason"] == "insufficient_funds"
    assert names(events) == ["payout.failed"]
    assert books.balance() == 1000

    refusing, _clock, _events = make({"UPI_EMULATOR_BALANCE": "1000", "UPI_EMULATOR_LOW_BALANCE": "refuse"})
    with pytest.raises(RazorpayError) as refused:
        pay(refusing, vpa_account(refusing))
    assert refused.value.reason == "insufficient_funds"
    assert refusing.payouts == {}
    again = pay(refusing, vpa_account(refusing), queue_if_low_balance=True)  # the same key: nothing was stored
    assert again["status"] == "queued"


def test_only_a_queued_payout_is_cancelled_and_it_never_moved_money() -> None:
    books, _clock, events = make({"UPI_EMULATOR_BALANCE": "100"})
    fa = vpa_account(books)
    queued = pay(books, fa, queue_if_low_balance=True)
    books.cancel(queued["id"])
    assert books.payout(queued["id"]).status is Status.CANCELLED
    assert names(events) == ["payout.queued"]  # RazorpayX has no payout.cancelled
    with pytest.raises(RazorpayError, match="Only queued payouts"):
        books.cancel(queued["id"])
    books.top_up(1_000_000)
    assert books.payout(queued["id"]).status is Status.CANCELLED


def test_downtime_queues_with_gateway_degraded_and_recovery_processes() -> None:
    books, _clock, _events = make()
    books.set_down("UPI", down=True)
    waiting = pay(books, vpa_account(books))
    assert waiting["status"] == "queued"
    assert waiting["status_details"]["reason"] == "gateway_degraded"
    books.set_down("UPI", down=False)
    assert books.payout(waiting["id"]).status is Status.PROCESSING


# -- idempotency and validation of the body ---------------------------------------------------------------------------
def test_same_key_same_body_is_the_first_answer_another_body_is_refused() -> None:
    books, clock, _events = make()
    fa = vpa_account(books)
    first = pay(books, fa)
    clock.t += 5
    books.run_due(clock.t)
    again = books.create_payout("k", "key-0001", dict(reversed(payout_body(fa).items())))  # key order is no change
    assert again == first  # the saved answer, status as it was then
    assert len(books.payouts) == 1
    with pytest.raises(RazorpayError) as refused:
        pay(books, fa, amount=50_001)
    assert refused.value.status == 400
    assert refused.value.field == "X-Payout-Idempotency"
    assert refused.value.description == "Different request body sent for the same Idempotency Header"
    other_key = books.create_payout("other-key-id", "key-0001", payout_body(fa))  # keys are per API key
    assert other_key["id"] != first["id"]


@pytest.mark.parametrize("key", [None, "", "abc", "x" * 37, "bad/key"])
def test_the_idempotency_key_is_mandatory_and_well_formed(key: str | None) -> None:
    books, _clock, _events = make()
    with pytest.raises(RazorpayError) as refused:
        books.create_payout("k", key, payout_body(vpa_account(books)))
    assert refused.value.field == "X-Payout-Idempotency"
    assert books.payouts == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 99}, "amount"),
        ({"amount": 100.0}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"mode": "upi"}, "mode"),  # case-sensitive
        ({"mode": "IMPS"}, "mode"),  # a VPA takes UPI only
        ({"amount": 10_000_001}, "amount"),  # above ₹1,00,000 by UPI
        ({"purpose": "gift"}, "purpose"),
        ({"account_number": "111"}, "account_number"),
        ({"fund_account_id": "fa_nope"}, "fund_account_id"),
        ({"narration": "no-dashes-here"}, "narration"),
        ({"reference_id": "r" * 41}, "reference_id"),
        ({"queue_if_low_balance": "yes"}, "queue_if_low_balance"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_payout_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    books, _clock, _events = make()
    body = {**payout_body(vpa_account(books)), **change}
    with pytest.raises(RazorpayError) as refused:
        books.create_payout("k", "key-0001", body)
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "BAD_REQUEST_ERROR", field)
    assert books.payouts == {}
    assert books.idempotency == {}  # a refusal is not stored: the key is still free


def test_mode_limits_are_per_mode_and_configurable() -> None:
    books, _clock, _events = make({"UPI_EMULATOR_BALANCE": "100000000", "UPI_EMULATOR_MODE_LIMITS": "IMPS:1000"})
    fa = bank_account(books)
    assert pay(books, fa, key="neft-big", mode="NEFT", amount=60_000_000)["status"] == "processing"  # no NEFT cap
    with pytest.raises(RazorpayError, match="maximum amount allowed for IMPS"):
        pay(books, fa, key="imps-big", mode="IMPS", amount=1001)
    with pytest.raises(RazorpayError, match="minimum amount allowed for RTGS"):
        pay(books, fa, key="rtgs-small", mode="RTGS", amount=100_000)


# -- contacts, fund accounts, validations -----------------------------------------------------------------------------
def test_contacts_and_fund_accounts_answer_the_existing_one_for_the_same_details() -> None:
    books, _clock, _events = make()
    first = books.create_contact({"name": "Asha Rao", "reference_id": "player-1"})
    assert books.create_contact({"name": "Asha Rao", "reference_id": "player-1"}).id == first.id
    assert books.create_contact({"name": "Asha Rao", "reference_id": "player-2"}).id != first.id
    body: dict[str, Any] = {"contact_id": first.id, "account_type": "vpa", "vpa": {"address": "asha@okicici"}}
    fa = books.create_fund_account(body)
    assert books.create_fund_account(body).id == fa.id
    assert fa.to_json()["vpa"] == {"username": "asha", "handle": "okicici", "address": "asha@okicici"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"vpa": {"address": "no-handle"}}, "vpa.address"),
        ({"account_type": "card"}, "account_type"),
        ({"contact_id": "cont_nope"}, "contact_id"),
    ]
    for bad, field in cases:
        with pytest.raises(RazorpayError) as refused:
            books.create_fund_account({**body, **bad})
        assert refused.value.field == field
    with pytest.raises(RazorpayError, match="11 characters"):
        books.create_fund_account(
            {
                "contact_id": first.id,
                "account_type": "bank_account",
                "bank_account": {"name": "Asha Rao", "ifsc": "HDFC53", "account_number": "12345"},
            }
        )


def test_a_validation_completes_later_with_the_registered_name_or_invalid_or_fails() -> None:
    books, clock, events = make()
    rules = [Rule("*@named", registered_name="A RAO")]
    books.rules[:0] = rules
    ok = books.create_validation({"account_number": ACCOUNT, "fund_account": {"id": vpa_account(books, "asha@named")}})
    bad = books.create_validation(
        {"account_number": ACCOUNT, "fund_account": {"id": vpa_account(books, "x.invalid@ybl")}}
    )
    lost = books.create_validation(
        {"account_number": ACCOUNT, "fund_account": {"id": vpa_account(books, "y.unreachable@ybl")}}
    )
    penny = books.create_validation({"account_number": ACCOUNT, "fund_account": {"id": bank_account(books)}})
    assert {v.status for v in (ok, bad, lost, penny)} == {"created"}
    assert ok.amount is None
    assert penny.amount == 100
    clock.t += 1
    books.run_due(clock.t)
    assert (ok.status, ok.account_status, ok.registered_name) == ("completed", "active", "A RAO")
    assert (bad.status, bad.account_status, bad.registered_name) == ("completed", "invalid", None)
    assert lost.status == "failed"
    assert (penny.status, penny.registered_name) == ("completed", "Ravi Kumar")
    assert books.balance() == 1_000_000 - 100  # the penny left
    assert names(events).count("fund_account.validation.completed") == 3
    assert names(events).count("fund_account.validation.failed") == 1


# -- the statement ----------------------------------------------------------------------------------------------------
def test_the_statement_pages_newest_first_with_a_running_balance() -> None:
    books, clock, _events = make()
    fa = vpa_account(books)
    for n in range(12):
        clock.t += 10
        pay(books, fa, key=f"key-{n:04}", amount=1000 + n)
    page1 = books.list_transactions({"account_number": ACCOUNT, "count": "5"})
    page3 = books.list_transactions({"account_number": ACCOUNT, "count": "5", "skip": "10"})
    assert len(page1) == 5
    assert [t["source"]["amount"] for t in page1] == [1011, 1010, 1009, 1008, 1007]
    assert page3[-1]["source"]["entity"] == "bank_transfer"
    assert page1[0]["balance"] == books.balance()
    assert page1[0]["debit"] == 1011 + 590
    windowed = books.list_transactions(
        {"account_number": ACCOUNT, "from": str(int(START) + 30), "to": str(int(START) + 50), "count": "100"}
    )
    assert [t["source"]["amount"] for t in windowed] == [1004, 1003, 1002]
    for query, field in [
        ({"count": "101"}, "count"),
        ({"skip": "-1"}, "skip"),
        ({"from": "x"}, "from"),
        ({}, "account_number"),
    ]:
        with pytest.raises(RazorpayError) as refused:
            books.list_transactions({"account_number": ACCOUNT, **query} if field != "account_number" else query)
        assert refused.value.field == field


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["asha@okicici", "b.failed@ybl", "c.reversed@ybl", "d.returned@ybl", "e.stuck@ybl"]),
            st.integers(100, 200_000),
            st.booleans(),
            st.integers(0, 20_000),
        ),
        max_size=15,
    ),
)
def test_money_is_conserved_whatever_the_bank_does(steps: list[tuple[str, int, bool, int]]) -> None:
    """The balance is the opening balance less what stands paid (amount and fees of payouts not given back)."""
    books, clock, _events = make({"UPI_EMULATOR_BALANCE": "300000"})
    for n, (address, amount, queue, wait) in enumerate(steps):
        pay(books, vpa_account(books, address), key=f"key-{n:04}", amount=amount, queue_if_low_balance=queue)
        clock.t += wait
        books.run_due(clock.t)
    clock.t += 24 * 3600
    books.run_due(clock.t)
    out = sum(p.amount + p.fees for p in books.payouts.values() if p.debited) - sum(
        books.returned(p) for p in books.payouts.values()
    )
    assert books.balance() == 300_000 - out >= 0
    for p in books.payouts.values():
        if p.status in (Status.FAILED, Status.REVERSED):
            assert books.returned(p) == (p.amount + p.fees if p.debited else 0)
    statement = books.statement()
    assert statement[-1][1] == books.balance()


# -- rules, settings, signature ---------------------------------------------------------------------------------------
def test_rules_parse_and_refuse_naming_what_is_wrong() -> None:
    [rule] = parse_rules([{"destination": "*@flaky", "payout": "reversed_after_processed", "after_s": 60}])
    assert rule.matches("Anyone@FLAKY")
    assert rule.failure_reason == "beneficiary_bank_rejected"
    for bad, words in [
        ([{"payout": "processed"}], "destination"),
        ([{"destination": "*", "payout": "lost"}], "payout must be one of"),
        ([{"destination": "*", "reason": "because"}], "reason must be one of"),
        ([{"destination": "*", "after_s": -1}], "after_s"),
        ([{"destination": "*", "colour": "red"}], "unknown rule fields"),
        ({"destination": "*"}, "list"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_rules(bad)
    assert DEFAULT_RULES[0].matches("x.invalid@ybl")


def test_settings_name_what_is_wrong() -> None:
    assert EmulatorSettings.from_env({"UPI_EMULATOR_KEYS": "a:b"}).limits == {
        "UPI": 10_000_000,
        "IMPS": 50_000_000,
        "NEFT": None,
        "RTGS": None,
    }
    for env, words in [
        ({}, "UPI_EMULATOR_KEYS is required"),
        ({"UPI_EMULATOR_KEYS": "nosecret"}, "key_id:key_secret"),
        ({"UPI_EMULATOR_KEYS": "a:b", "UPI_EMULATOR_MODE_LIMITS": "CARD:1"}, "UPI_EMULATOR_MODE_LIMITS"),
        ({"UPI_EMULATOR_KEYS": "a:b", "UPI_EMULATOR_LOW_BALANCE": "maybe"}, "UPI_EMULATOR_LOW_BALANCE"),
        ({"UPI_EMULATOR_KEYS": "a:b", "UPI_EMULATOR_WEBHOOK_URL": "http://x"}, "go together"),
        ({"UPI_EMULATOR_KEYS": "a:b", "UPI_EMULATOR_RULES": "[{}]"}, "UPI_EMULATOR_RULES"),
    ]:
        with pytest.raises(SettingsError, match=words):
            EmulatorSettings.from_env(env)


def test_the_signature_is_hmac_sha256_of_the_raw_body_in_hex() -> None:
    body = json.dumps({"event": "payout.processed"}).encode()
    assert sign("whsec", body) == hmac.new(b"whsec", body, hashlib.sha256).hexdigest()
