"""The PayPal rail on a scripted PayPal (an httpx transport answering as PayPal's API does) and its books in memory
(`tests/support/paypal_fakes.py`, held to PostgreSQL by tests/integration/test_paypal_books.py). The rail against
the PayPal emulator is tests in tools/testkit's conformance kit and services/payouts/tests/integration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from paypal_fakes import OPTIONS, FakePayPal, MemoryPayPalBooks, lookup, pay, result

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import ProviderPayoutStatus, StatementLineKind
from prizeflow_payouts.adapters.paypal.client import PayPalKeys
from prizeflow_payouts.adapters.paypal.provider import PayPalPayoutProvider, recipient_of
from prizeflow_payouts.adapters.paypal.statement import statement_lines, transactions

C, S = PayoutErrorCode, ProviderPayoutStatus


@pytest.fixture
def paypal() -> FakePayPal:
    return FakePayPal()


@pytest.fixture
def books() -> MemoryPayPalBooks:
    return MemoryPayPalBooks()


@pytest.fixture
def rail(paypal: FakePayPal, books: MemoryPayPalBooks) -> PayPalPayoutProvider:
    return PayPalPayoutProvider(
        OPTIONS, keys=PayPalKeys("client", "secret"), books=books, transport=httpx.MockTransport(paypal.handler)
    )


async def test_a_batch_is_one_request_of_every_payout_under_its_own_request_id(
    rail: PayPalPayoutProvider, paypal: FakePayPal, books: MemoryPayPalBooks
) -> None:
    out = await rail.create_payouts([pay("k1"), pay("k2", 99, "+14155550100")])
    assert [result(o).status for o in out] == [S.PENDING, S.PENDING]
    assert [c for c in paypal.calls if c[1] == "/v1/payments/payouts"] == [("POST", "/v1/payments/payouts")]
    (batch,) = paypal.batches.values()
    sent = [i["payout_item"] for i in batch["items"]]
    assert [(i["sender_item_id"], i["amount"], i["recipient_type"]) for i in sent] == [
        ("k1", {"value": "12.50", "currency": "USD"}, "EMAIL"),
        ("k2", {"value": "0.99", "currency": "USD"}, "PHONE"),
    ]
    assert books.units[0] == "enter"  # written, and committed, before it was sent
    (ours,) = books.state.batches.values()
    assert ours.sender_batch_id == batch["request_id"]
    assert ours.payout_batch_id == "PB1"


async def test_a_payout_created_again_is_never_sent_again(rail: PayPalPayoutProvider, paypal: FakePayPal) -> None:
    await rail.create_payouts([pay("k1")])
    paypal.set_state("k1", "SUCCESS")
    again = result(await rail.create_payout(pay("k1")))
    assert again.status is S.PAID
    assert len(paypal.batches) == 1
    assert sum(1 for c in paypal.calls if c == ("POST", "/v1/payments/payouts")) == 1


@pytest.mark.parametrize(
    ("state", "error", "status", "code"),
    [
        ("SUCCESS", None, S.PAID, None),
        ("PENDING", None, S.PENDING, None),
        ("UNCLAIMED", None, S.PENDING, None),
        ("ONHOLD", None, S.PENDING, None),
        ("RETURNED", None, S.FAILED, C.DESTINATION_NOT_FOUND),
        ("BLOCKED", None, S.FAILED, C.DESTINATION_BLOCKED),
        ("FAILED", "RECEIVER_ACCOUNT_LOCKED", S.FAILED, C.DESTINATION_BLOCKED),
        ("DENIED", None, S.FAILED, C.COMPLIANCE_REJECTED),
        ("REFUNDED", None, S.RETURNED, None),
        ("REVERSED", None, S.RETURNED, None),
    ],
)
async def test_an_items_state_is_the_payouts_status(
    rail: PayPalPayoutProvider,
    paypal: FakePayPal,
    state: str,
    error: str | None,
    status: ProviderPayoutStatus,
    code: PayoutErrorCode | None,
) -> None:
    await rail.create_payouts([pay("k1")])
    paypal.set_state("k1", state, **({"errors": {"name": error}} if error else {}))
    synced = await rail.sync_status(lookup("k1"))
    assert synced.status is status
    assert synced.provider_ref == "PB1I0"
    assert (synced.error.code if synced.error else None) is code
    assert synced.fee == (Money(asset="USD", amount=25) if status is S.PAID else None)


async def test_a_lost_answer_is_asked_again_with_the_very_request_and_paid_once(
    rail: PayPalPayoutProvider, paypal: FakePayPal, books: MemoryPayPalBooks
) -> None:
    paypal.lose_answer = True
    (lost,) = await rail.create_payouts([pay("k1"), pay("k2")][:1])
    assert isinstance(lost, PayoutProviderError)
    assert lost.code is C.TIMEOUT_UNKNOWN_OUTCOME
    (ours,) = books.state.batches.values()
    assert ours.payout_batch_id is None
    paypal.set_state("k1", "SUCCESS")
    synced = await rail.sync_status(lookup("k1"))
    assert synced.status is S.PAID
    posts = [c for c in paypal.calls if c == ("POST", "/v1/payments/payouts")]
    assert len(posts) == 2  # the first, and the same request again under its id
    assert len(paypal.batches) == 1  # PayPal made one batch
    assert books.state.batches[("paypal", ours.sender_batch_id)].payout_batch_id == "PB1"


async def test_a_refused_batch_made_nothing_and_its_payouts_may_be_created_again(
    rail: PayPalPayoutProvider, paypal: FakePayPal, books: MemoryPayPalBooks
) -> None:
    paypal.fail_next.append(httpx.Response(422, json={"name": "INSUFFICIENT_FUNDS", "message": "top up"}))
    (refused,) = await rail.create_payouts([pay("k1")])
    assert isinstance(refused, PayoutProviderError)
    assert refused.code is C.INSUFFICIENT_PROVIDER_FUNDS
    assert refused.retryable
    assert books.state.batches == {}
    assert books.state.items == {}
    with pytest.raises(PayoutProviderError) as not_found:
        await rail.sync_status(lookup("k1"))
    assert not_found.value.code is C.PAYOUT_NOT_FOUND
    assert result(await rail.create_payout(pay("k1"))).status is S.PENDING
    assert len(paypal.batches) == 1


async def test_a_batch_refused_for_good_fails_its_payouts(rail: PayPalPayoutProvider, paypal: FakePayPal) -> None:
    details = [{"field": "items[0].receiver", "issue": "INVALID"}]
    paypal.fail_next.append(httpx.Response(400, json={"name": "VALIDATION_ERROR", "details": details}))
    (failed,) = await rail.create_payouts([pay("k1")])
    assert result(failed).status is S.FAILED
    assert result(failed).error is not None
    assert not result(failed).error.retryable  # type: ignore[union-attr]


async def test_an_outage_of_a_create_is_unknown_and_of_a_read_is_not(
    rail: PayPalPayoutProvider, paypal: FakePayPal
) -> None:
    paypal.fail_next.append(httpx.Response(503, json={"name": "INTERNAL_SERVICE_ERROR"}))
    (unknown,) = await rail.create_payouts([pay("k1")])
    assert isinstance(unknown, PayoutProviderError)
    assert unknown.code is C.TIMEOUT_UNKNOWN_OUTCOME
    paypal.fail_next.append(httpx.Response(503, json={"name": "INTERNAL_SERVICE_ERROR"}))
    with pytest.raises(PayoutProviderError) as again:  # its sync sends the very request again: still unknown
        await rail.sync_status(lookup("k1"))
    assert again.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    await rail.create_payouts([pay("k2")])
    paypal.fail_next.append(httpx.Response(503, json={"name": "INTERNAL_SERVICE_ERROR"}))
    with pytest.raises(PayoutProviderError) as read:  # an answered batch is only read
        await rail.sync_status(lookup("k2"))
    assert read.value.code is C.PROVIDER_UNAVAILABLE


async def test_a_replayed_batch_paypal_no_longer_answers_stays_unknown_for_a_person(
    rail: PayPalPayoutProvider, paypal: FakePayPal
) -> None:
    """PayPal refuses a reused `sender_batch_id` (400 USER_BUSINESS_ERROR on SENDER_BATCH_ID) once it no longer
    answers the request id again: the batch exists, its answer is lost; nothing is forgotten or sent again."""
    paypal.lose_answer = True
    await rail.create_payouts([pay("k1")])
    details = [{"field": "SENDER_BATCH_ID", "issue": "Batch with given sender_batch_id already exists"}]
    paypal.fail_next.append(httpx.Response(400, json={"name": "USER_BUSINESS_ERROR", "details": details}))
    with pytest.raises(PayoutProviderError) as lost:
        await rail.sync_status(lookup("k1"))
    assert lost.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    paypal.fail_next.append(httpx.Response(400, json={"name": "USER_BUSINESS_ERROR", "details": details}))
    with pytest.raises(PayoutProviderError) as again:
        await rail.create_payout(pay("k1"))  # created again: the same batch asked about, never a second one
    assert again.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert len(paypal.batches) == 1


async def test_a_payout_no_batch_carried_is_not_found_and_another_payouts_key_is_refused(
    rail: PayPalPayoutProvider,
) -> None:
    with pytest.raises(PayoutProviderError) as missing:
        await rail.sync_status(lookup("nobody"))
    assert missing.value.code is C.PAYOUT_NOT_FOUND
    await rail.create_payouts([pay("k1")])
    with pytest.raises(PayoutProviderError) as other:
        await rail.sync_status(lookup("k1", amount=999))
    assert other.value.code is C.DUPLICATE_REQUEST


async def test_only_an_unclaimed_item_is_cancelled(rail: PayPalPayoutProvider, paypal: FakePayPal) -> None:
    await rail.create_payouts([pay("k1"), pay("k2")])
    paypal.set_state("k1", "UNCLAIMED")
    paypal.set_state("k2", "SUCCESS")
    cancelled = await rail.cancel(lookup("k1"))
    assert (cancelled.status, cancelled.raw_status) == (S.CANCELLED, "RETURNED")
    with pytest.raises(PayoutProviderError) as late:
        await rail.cancel(lookup("k2"))
    assert late.value.code is C.NOT_CANCELLABLE


async def test_a_token_is_traded_once_and_again_when_paypal_ends_it(
    rail: PayPalPayoutProvider, paypal: FakePayPal
) -> None:
    await rail.create_payouts([pay("k1")])
    await rail.sync_status(lookup("k1"))
    assert paypal.tokens == 1
    paypal.fail_next.append(httpx.Response(401, json={"error": "invalid_token"}))
    await rail.sync_status(lookup("k1"))
    assert paypal.tokens == 2


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("player@example.com", True),
        ("+14155550100", True),
        ("ABCDEFGHJKLMN", True),
        ("not-an-address", False),
        ("+12", False),
        ("abcdefghjklmn", False),
    ],
)
def test_a_destination_is_an_email_a_phone_or_a_paypal_id(rail: PayPalPayoutProvider, address: str, ok: bool) -> None:
    assert (recipient_of(address) is not None) is ok
    error = rail.validate(pay("k1", to=address))
    assert (error is None) is ok


def test_a_key_longer_than_paypals_item_id_is_refused_before_anything_is_made(rail: PayPalPayoutProvider) -> None:
    error = rail.validate(pay("k" * 64))
    assert error is not None
    assert error.code is C.INVALID_REQUEST


async def test_the_statement_names_our_payouts_by_key_and_keeps_the_rest_for_a_person(
    rail: PayPalPayoutProvider, paypal: FakePayPal
) -> None:
    await rail.create_payouts([pay("k1")])
    paypal.set_state("k1", "SUCCESS")
    await rail.sync_status(lookup("k1"))  # the item's ids are learned here
    at = "2026-11-28T10:00:00+0000"

    def tx(tid: str, value: str, fee: str | None = None, ref: str | None = None, code: str = "T0001") -> dict[str, Any]:
        doc: dict[str, Any] = {
            "transaction_id": tid,
            "transaction_event_code": code,
            "transaction_initiation_date": at,
            "transaction_amount": {"currency_code": "USD", "value": value},
            "transaction_status": "S",
        }
        if fee is not None:
            doc["fee_amount"] = {"currency_code": "USD", "value": fee}
        if ref is not None:
            doc["paypal_reference_id"] = ref
        return doc

    paypal.transactions = [
        tx("PB1T0", "-12.50", "-0.25"),  # a fee folded into the movement
        tx("F1", "-0.25", ref="PB1T0", code="T0104"),  # a fee of its own (the emulator's, PayPal's T0104)
        tx("R1", "12.50", ref="PB1T0", code="T1114"),
        tx("FB1", "0.25", ref="PB1T0", code="T1108"),
        tx("X1", "-3.00", code="T0400"),
        tx("D1", "-1.00", ref="PB1T0", code="T0001") | {"transaction_status": "D"},
    ]
    since = datetime(2026, 11, 28, 9, tzinfo=UTC)
    page = await rail.statement(since, since + timedelta(hours=2))
    got = [(line.line_id, line.kind, line.amount, line.reference, line.provider_ref) for line in page.lines]
    assert got == [
        ("PB1T0", StatementLineKind.PAYOUT, 1250, "k1", "PB1I0"),
        ("PB1T0:fee", StatementLineKind.FEE, 25, "k1", "PB1I0"),
        ("F1", StatementLineKind.FEE, 25, "k1", "PB1I0"),
        ("R1", StatementLineKind.REVERSAL, 1250, "k1", "PB1I0"),
        ("FB1", StatementLineKind.CREDIT, 25, "k1", "PB1I0"),
        ("X1", StatementLineKind.DEBIT, 300, None, "X1"),
    ]
    assert page.next_cursor is None
    outside: Callable[[], Any] = lambda: rail.statement(since + timedelta(hours=2), since + timedelta(hours=3))  # noqa: E731
    assert (await outside()).lines == ()


def _spec(secrets: dict[str, str], **options: Any) -> Any:
    from prizeflow_payouts.provider_spec import ProviderSpec

    env = {"ID": "client", "SECRET": "secret", "WHID": "WH1234567890ABCDEF", "CERT": _cert_pem()}
    entry = {
        "name": "paypal",
        "type": "paypal",
        "assets": ["USD"],
        "destination_types": ["paypal"],
        "secrets": secrets,
        "options": options,
    }
    return ProviderSpec.model_validate(entry, context={"env": env})


def _cert_pem() -> str:
    from prizeflow_paypal_emulator.signing import generate

    return generate().cert_pem.decode()


def _context(*, live: bool) -> Any:
    from prizeflow_payouts.provider_spec import ProviderContext

    return ProviderContext(
        live_execution=live, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10
    )


def test_the_live_api_is_refused_to_a_build_only_deployment_and_the_sandbox_is_the_default() -> None:
    from prizeflow_payouts.adapters.paypal.client import SANDBOX_API, parse_options
    from prizeflow_payouts.provider_spec import ProviderConfigError

    keys = {"client_id": "ID", "client_secret": "SECRET"}
    options, _ = parse_options(_spec(keys), _context(live=False))
    assert options.api_base == SANDBOX_API
    with pytest.raises(ProviderConfigError, match="PAYOUTS_LIVE_EXECUTION"):
        parse_options(_spec(keys, api_base="https://api-m.paypal.com"), _context(live=False))
    assert parse_options(_spec(keys, api_base="https://api-m.paypal.com"), _context(live=True))[1].webhook == ()


def test_the_webhook_is_pinned_whole_or_not_at_all() -> None:
    from prizeflow_payouts.adapters.paypal.client import parse_options
    from prizeflow_payouts.provider_spec import ProviderConfigError

    keys = {"client_id": "ID", "client_secret": "SECRET"}
    with pytest.raises(ProviderConfigError, match="go together"):
        parse_options(_spec(keys | {"webhook_id": "WHID"}), _context(live=False))
    with pytest.raises(ProviderConfigError, match="webhook"):
        parse_options(_spec(keys | {"webhook_id": "WHID", "webhook_cert": "SECRET"}), _context(live=False))
    _, pinned = parse_options(_spec(keys | {"webhook_id": "WHID", "webhook_cert": "CERT"}), _context(live=False))
    assert pinned.webhook[0] == "WH1234567890ABCDEF"  # PayPal's own certificate hosts: no origin pinned besides
    assert len(pinned.webhook) == 2
    _, local = parse_options(
        _spec(keys | {"webhook_id": "WHID", "webhook_cert": "CERT"}, api_base="http://paypal-api:8080"),
        _context(live=False),
    )
    assert local.webhook[2] == "http://paypal-api:8080"  # an emulator's certificate URLs are on its own origin


# -- an adversarial review of the rail (issue 58), each finding held here ---------------------------------------------
# A refused re-send never forgets a batch PayPal may hold (no double payment, no payout failed while PayPal pays it);
# one refused item does not fail its batch's other payouts; a payment's transaction id is kept whenever a sync first
# sees it; a phone payee keeps its country code; a batch the options make unsendable fails its payouts at once,
# nothing sent.


C, S = PayoutErrorCode, ProviderPayoutStatus


class TokenRefused(FakePayPal):
    """PayPal refusing our REST app's credentials at the token endpoint while `refuse_token` is set."""

    refuse_token = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token" and self.refuse_token:
            self.calls.append((request.method, request.url.path))
            return httpx.Response(401, json={"error": "invalid_client"})
        return super().handler(request)


def rail_on(paypal: FakePayPal, books: MemoryPayPalBooks, **options: Any) -> PayPalPayoutProvider:
    return PayPalPayoutProvider(
        replace(OPTIONS, **options),
        keys=PayPalKeys("client", "secret"),
        books=books,
        transport=httpx.MockTransport(paypal.handler),
    )


def items_of(paypal: FakePayPal, key: str) -> list[dict[str, Any]]:
    return [i for b in paypal.batches.values() for i in b["items"] if i["payout_item"]["sender_item_id"] == key]


async def test_a_re_send_refused_for_our_credentials_leaves_the_batch_unknown_and_never_pays_twice() -> None:
    paypal, books = TokenRefused(), MemoryPayPalBooks()
    rail = rail_on(paypal, books)
    paypal.lose_answer = True  # PayPal makes the batch; its answer is lost
    await rail.create_payouts([pay("k1")])
    rail.http._token = None
    paypal.refuse_token = True  # the REST app's secret rotated: the re-send never reaches the payouts endpoint
    with pytest.raises(PayoutProviderError) as synced:
        await rail.sync_status(lookup("k1"))
    assert synced.value.code is C.TIMEOUT_UNKNOWN_OUTCOME  # never "not found: creating it is safe"
    assert len(books.state.batches) == 1  # the batch is kept: the next sync asks again
    (again,) = await rail.create_payouts([pay("k1")])  # the worker creates again with the same key
    if isinstance(again, PayoutProviderError):
        assert again.code is C.TIMEOUT_UNKNOWN_OUTCOME  # unknown, never a final failure while PayPal pays it
    paypal.refuse_token = False
    rail.http._token = None
    paypal.set_state("k1", "SUCCESS")
    assert (await rail.sync_status(lookup("k1"))).status is S.PAID
    assert len(items_of(paypal, "k1")) == 1  # one item: paid once


@pytest.mark.parametrize("refusal", [403, 404, 422])
async def test_no_refusal_of_a_re_send_lets_a_cancel_release_a_payout_paypal_may_hold(refusal: int) -> None:
    paypal, books = FakePayPal(), MemoryPayPalBooks()
    rail = rail_on(paypal, books)
    paypal.lose_answer = True
    await rail.create_payouts([pay("k1")])
    paypal.fail_next.append(httpx.Response(refusal, json={"name": "INSUFFICIENT_FUNDS" if refusal == 422 else "X"}))
    with pytest.raises(PayoutProviderError) as cancelled:
        await rail.cancel(lookup("k1"))
    assert cancelled.value.code is not C.PAYOUT_NOT_FOUND
    assert len(books.state.batches) == 1


async def test_a_re_send_paypal_refuses_as_malformed_forgets_the_batch() -> None:
    """PayPal read the very body again and refused it: it did (or would have) the first time; nothing was made."""
    paypal, books = FakePayPal(), MemoryPayPalBooks()
    rail = rail_on(paypal, books)
    paypal.fail_next.append(httpx.Response(503, json={"name": "INTERNAL_SERVICE_ERROR"}))  # not made, unknown
    await rail.create_payouts([pay("k1")])
    paypal.fail_next.append(httpx.Response(400, json={"name": "VALIDATION_ERROR", "details": []}))
    with pytest.raises(PayoutProviderError) as synced:
        await rail.sync_status(lookup("k1"))
    assert synced.value.code is C.PAYOUT_NOT_FOUND
    assert books.state.batches == {}


async def test_one_refused_item_fails_alone_and_the_others_go_again_in_another_batch() -> None:
    paypal, books = FakePayPal(), MemoryPayPalBooks()
    rail = rail_on(paypal, books)
    details = [{"field": "items[1].receiver", "location": "body", "issue": "Receiver is invalid"}]
    paypal.fail_next.append(httpx.Response(400, json={"name": "VALIDATION_ERROR", "details": details}))
    innocent, culprit = await rail.create_payouts([pay("k1"), pay("k2", to="a..b@example.com")])
    assert isinstance(innocent, PayoutProviderError)
    assert innocent.retryable
    assert result(culprit).status is S.FAILED
    assert books.state.batches == {}  # nothing was made: forgotten
    assert result(await rail.create_payout(pay("k1"))).status is S.PENDING  # alone, in a batch of its own
    assert len(items_of(paypal, "k1")) == 1


async def test_a_payment_debited_long_after_its_batch_is_named_by_our_key() -> None:
    made = datetime(2026, 11, 27, 10, tzinfo=UTC)
    paypal, books = FakePayPal(), MemoryPayPalBooks(clock=lambda: made)
    rail = rail_on(paypal, books)
    await rail.create_payouts([pay("k1")])
    paypal.item("k1")["transaction_id"] = None  # PayPal reviews it: no money moved, no transaction yet
    assert (await rail.sync_status(lookup("k1"))).status is S.PENDING
    paypal.set_state("k1", "SUCCESS", transaction_id="TXK1PAID")  # a day later
    assert (await rail.sync_status(lookup("k1"))).status is S.PAID
    paid_at = made + timedelta(days=1)
    paypal.transactions = [
        {
            "transaction_id": "TXK1PAID",
            "paypal_reference_id": "TXK1PAID",
            "transaction_event_code": "T0001",
            "transaction_initiation_date": paid_at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "transaction_amount": {"currency_code": "USD", "value": "-12.50"},
            "transaction_status": "S",
        }
    ]
    (line,) = (await rail.statement(paid_at - timedelta(hours=1), paid_at + timedelta(hours=1))).lines
    assert (line.kind, line.reference, line.provider_ref) == (StatementLineKind.PAYOUT, "k1", "PB1I0")


def test_a_phone_payee_keeps_its_country_code() -> None:
    (t,) = transactions(
        {
            "transaction_details": [
                {
                    "transaction_info": {
                        "transaction_id": "TX1",
                        "transaction_event_code": "T0001",
                        "transaction_initiation_date": "2026-11-28T10:00:00+0000",
                        "transaction_amount": {"currency_code": "USD", "value": "-12.50"},
                        "transaction_status": "S",
                    },
                    "payer_info": {"phone_number": {"country_code": "1", "national_number": "4155550100"}},
                }
            ]
        }
    )
    (line,) = statement_lines(t, ("k1", "ITEM1"))
    assert line.destination == "+14155550100"


async def test_a_batch_its_options_make_unsendable_fails_its_payouts_and_sends_nothing() -> None:
    paypal, books = FakePayPal(), MemoryPayPalBooks()
    rail = rail_on(paypal, books, note="")  # the providers file refuses it (min 1); built in code, it still fails
    (failed,) = await rail.create_payouts([pay("k1")])
    assert result(failed).status is S.FAILED
    assert result(failed).error is not None
    assert result(failed).error.code is C.INVALID_REQUEST  # type: ignore[union-attr]
    assert paypal.batches == {}
    assert books.state.batches == {}
