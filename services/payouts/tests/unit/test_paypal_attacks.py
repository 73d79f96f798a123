"""An adversarial review of the PayPal rail (issue 58), each finding held here: a refused re-send never forgets a
batch PayPal may hold (no double payment, no payout failed while PayPal pays it); one refused item does not fail its
batch's other payouts; a payment's transaction id is kept whenever a sync first sees it; a phone payee keeps its
country code; a batch the options make unsendable fails its payouts at once, nothing sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from paypal_fakes import OPTIONS, FakePayPal, MemoryPayPalBooks, lookup, pay, result

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import ProviderPayoutStatus, StatementLineKind
from prizeflow_payouts.adapters.paypal.options import PayPalKeys
from prizeflow_payouts.adapters.paypal.provider import PayPalPayoutProvider
from prizeflow_payouts.adapters.paypal.statement import statement_lines, transactions

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
