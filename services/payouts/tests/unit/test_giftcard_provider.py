"""The gift-card rail on the emulator's own books behind an httpx transport (no socket): configuration refusals,
validation, idempotency by external id, statuses, cancel, error mapping, webhooks, and the card never kept."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError, is_retryable
from prizeflow_contracts.giftcard import GIFTCARD_SIGNATURE_HEADER, giftcard_signature
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
    ProviderType,
)
from prizeflow_giftcard_emulator.state import Outcome
from prizeflow_payouts.adapters.giftcard import GiftCardErrors, GiftCardPayoutProvider, HttpRefusalError
from prizeflow_payouts.adapters.giftcard.factory import giftcard_rail
from prizeflow_payouts.bootstrap import parse_config, provider_factories
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext
from prizeflow_testkit.giftcard_payouts import (
    TEST_API_KEY,
    TEST_WEBHOOK_KEY,
    StoreTransport,
    build_test_provider,
    giftcard_provider_doc,
)

C = PayoutErrorCode
P = ProviderPayoutStatus
CTX = ProviderContext(live_execution=False, database_url="postgresql+asyncpg://x@127.0.0.1:1/x", provider_timeout_s=10)
ENV = {"GIFTCARD_API_KEY": TEST_API_KEY, "GIFTCARD_WEBHOOK_KEY": TEST_WEBHOOK_KEY}


def instruction(
    n: int = 1, *, email: str = "ann@example.com", amount: int = 2_510, asset: str = "USD"
) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"po-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset=asset, amount=amount),
        destination=PayoutDestination(type=DestinationType.EMAIL, address=email),
    )


def lookup(instr: PayoutInstruction, *, ref: str | None = None, full: bool = True) -> PayoutLookup:
    """The worker's lookup (the payout record's amount and destination); `full=False`: an older caller's."""
    extra: dict[str, Any] = {"amount": instr.amount, "destination": instr.destination} if full else {}
    return PayoutLookup(payout_id=instr.payout_id, idempotency_key=instr.idempotency_key, provider_ref=ref, **extra)


def rail(**doc: Any) -> tuple[GiftCardPayoutProvider, StoreTransport]:
    transport = StoreTransport()
    return build_test_provider(transport, **doc), transport


# -- configuration --------------------------------------------------------------------------------------------
def test_a_gift_card_entry_builds_the_rail_with_its_capabilities() -> None:
    assert ProviderType.GIFT_CARD in provider_factories()
    cfg = parse_config({"providers": [giftcard_provider_doc()]}, CTX, env=ENV)
    entry = next(iter(cfg.registry))
    p = entry.provider
    assert isinstance(p, GiftCardPayoutProvider)
    assert entry.rail.engine is p
    assert entry.rail.validator is p
    assert entry.polls_status
    caps = entry.capabilities
    assert (caps.supports_cancel, caps.supports_webhooks, caps.async_confirmation, caps.supports_returns) == (
        True,
        True,
        True,
        False,
    )
    assert TEST_API_KEY not in repr(p)


@pytest.mark.parametrize(
    ("change", "env", "needle"),
    [
        ({"destination_types": ["stripe_account"]}, ENV, "email destinations only"),
        ({"assets": ["USDC"]}, ENV, "not fiat"),
        (
            {"assets": ["USD", "INR"], "options": {"products": {"USD": ["OKMHM2X2OHYV"]}}},
            ENV,
            "no catalogue ids for INR",
        ),
        ({"options": {"products": {"USD": ["OKMHM2X2OHYV"]}, "colour": "red"}}, ENV, "unknown option"),
        ({"options": {"products": {"USD": ["bad id!"]}}}, ENV, "catalogue ids"),
        ({"secrets": {"api_key": "GIFTCARD_API_KEY", "password": "GIFTCARD_WEBHOOK_KEY"}}, ENV, "not ['password']"),
        ({}, {"GIFTCARD_WEBHOOK_KEY": TEST_WEBHOOK_KEY}, "GIFTCARD_API_KEY, which is not set"),
        ({}, {**ENV, "GIFTCARD_API_KEY": "PROD_live_key_0123456789"}, "only ever sent to https://api.tremendous.com"),
        (
            {"options": {"products": {"USD": ["OKMHM2X2OHYV"]}, "api_base": "https://api.tremendous.com"}},
            {**ENV, "GIFTCARD_API_KEY": "PROD_live_key_0123456789"},
            "PAYOUTS_LIVE_EXECUTION is false",
        ),
        (
            {"options": {"products": {"USD": ["OKMHM2X2OHYV"]}, "api_base": "http://cards.example.com/api/v2"}},
            ENV,
            "https",
        ),
        ({"options": {"products": {"USD": ["OKMHM2X2OHYV"]}, "api_base_env": "GIFTCARD_API_URL"}}, ENV, "not set"),
        (
            {"options": {"products": {"USD": ["OKMHM2X2OHYV"]}, "delivery": "link"}},
            ENV,
            "options.delivery: 'link' is not supported",
        ),
    ],
)
def test_unusable_gift_card_configuration_is_refused_naming_it(
    change: dict[str, Any], env: dict[str, str], needle: str
) -> None:
    entry = {**giftcard_provider_doc(), **change}
    if "options" in change:
        entry["options"] = change["options"]
    with pytest.raises(ProviderConfigError) as err:
        parse_config({"providers": [entry]}, CTX, env=env)
    assert needle in str(err.value)
    assert "PROD_live_key" not in str(err.value)


def test_api_base_env_reads_the_emulators_address() -> None:
    doc = giftcard_provider_doc()
    doc["options"] = {"products": {"USD": ["OKMHM2X2OHYV"]}, "api_base_env": "GIFTCARD_API_URL"}
    cfg = parse_config({"providers": [doc]}, CTX, env={**ENV, "GIFTCARD_API_URL": "http://127.0.0.1:9"})
    provider = next(iter(cfg.registry)).provider
    assert isinstance(provider, GiftCardPayoutProvider)
    assert provider.options.api_base == "http://127.0.0.1:9"


# -- validation and quote -------------------------------------------------------------------------------------
@pytest.mark.parametrize("email", ["not-an-email", "ann@@example.com", "ann@localhost", "x" * 65 + "@example.com"])
async def test_a_destination_that_is_not_an_email_is_refused_before_anything_is_ordered(email: str) -> None:
    p, t = rail()
    result = await p.create_payout(instruction(email=email))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.INVALID_DESTINATION
    assert email not in result.error.message
    assert t.calls == []


async def test_an_asset_without_products_is_unsupported_and_a_quote_is_the_face_value() -> None:
    p, _ = rail()
    error = p.validate(instruction(asset="INR", amount=100_000))
    assert error is not None
    assert error.code is C.UNSUPPORTED_ASSET
    q = await p.quote(instruction())
    assert (q.receive_amount, q.fee.amount) == (Money(asset="USD", amount=2_510), 0)


# -- create, sync, idempotency --------------------------------------------------------------------------------
async def test_an_order_carries_the_payout_id_as_external_id_and_is_paid_once_delivered() -> None:
    p, t = rail()
    instr = instruction()
    result = await p.create_payout(instr)
    assert (result.status, result.raw_status) == (P.PAID, "EXECUTED/SUCCEEDED")
    order = t.store.orders[str(result.provider_ref)]
    assert (order.external_id, order.reward.denomination, order.reward.currency) == ("po-1", Decimal("25.10"), "USD")
    assert order.reward.products == ["OKMHM2X2OHYV"]
    again = await p.create_payout(instr)
    assert again.provider_ref == result.provider_ref
    assert t.store.created == 1
    assert (await p.sync_status(lookup(instr))).status is P.PAID


async def test_a_timeout_after_the_order_landed_is_an_unknown_outcome_that_sync_resolves_paid_once() -> None:
    p, t = rail()
    instr = instruction()
    t.fail_next("timeout_after_success")
    with pytest.raises(PayoutProviderError) as err:
        await p.create_payout(instr)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert is_retryable(err.value.code)
    assert (await p.sync_status(lookup(instr))).status is P.PAID
    assert (await p.create_payout(instr)).status is P.PAID  # the retry answers the same order
    assert t.store.created == 1


class Unreadable(httpx.AsyncBaseTransport):
    """The provider places the order, but the answer that reaches us cannot be read as one (a gateway's 200 page,
    an empty body, an order without the fields we read)."""

    def __init__(self, inner: StoreTransport, body: bytes) -> None:
        self.inner, self.body = inner, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/orders") and self.body:
            body, self.body = self.body, b""
            return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})
        return response


@pytest.mark.parametrize(
    "body",
    [
        b" ",
        b"<html>OK</html>",
        b'{"ok": true}',
        b'{"order": {"id": "ORD1", "external_id": "po-1", "status": "EXECUTED"}}',
        b'{"order": {"id": "ORD1", "external_id": "po-1", "status": "PROCESSING", "rewards": [{"id": "R1", '
        b'"value": {"denomination": 25.1, "currency_code": "USD"}, "recipient": {"email": "ann@example.com"}}]}}',
    ],
)
async def test_an_order_placed_whose_answer_cannot_be_read_is_an_unknown_outcome_never_a_known_failure(
    body: bytes,
) -> None:
    """Once the order request was answered 2xx the order exists: a known failure (`provider_unavailable`) would let
    the worker fail the payout for good on its last attempt, or an admin cancel it locally, voiding the reservation
    while the card is delivered."""
    inner = StoreTransport()
    p = build_test_provider(Unreadable(inner, body))
    instr = instruction()
    with pytest.raises(PayoutProviderError) as err:
        await p.create_payout(instr)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert inner.store.created == 1
    assert (await p.sync_status(lookup(instr))).status is P.PAID
    assert inner.store.created == 1


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("rate_limit", C.RATE_LIMITED),
        ("server_error", C.TIMEOUT_UNKNOWN_OUTCOME),
        ("connect_error", C.PROVIDER_UNAVAILABLE),
        ("read_error", C.TIMEOUT_UNKNOWN_OUTCOME),
    ],
)
async def test_transient_faults_are_retryable_and_the_retry_pays_once(fault: str, code: PayoutErrorCode) -> None:
    p, t = rail()
    instr = instruction()
    t.fail_next(fault)
    with pytest.raises(PayoutProviderError) as err:
        await p.create_payout(instr)
    assert err.value.code is code
    assert is_retryable(code)
    assert (await p.create_payout(instr)).status is P.PAID
    assert t.store.created == 1


async def test_sync_says_not_found_only_when_the_provider_has_no_order() -> None:
    p, _ = rail()
    with pytest.raises(PayoutProviderError) as err:
        await p.sync_status(lookup(instruction()))
    assert err.value.code is C.PAYOUT_NOT_FOUND


@pytest.mark.parametrize(
    ("outcome", "amount", "code"),
    [
        (Outcome.INVALID_EMAIL, 2_510, C.INVALID_DESTINATION),
        (Outcome.ORDER_FAILED, 2_510, C.TX_FAILED),
        (Outcome.DELIVERY_FAILED, 2_510, C.INVALID_DESTINATION),
        (Outcome.DELIVER, 50, C.AMOUNT_BELOW_MINIMUM),
        (Outcome.DELIVER, 300_000, C.AMOUNT_ABOVE_MAXIMUM),
    ],
)
async def test_terminal_refusals_fail_the_payout_for_good(outcome: Outcome, amount: int, code: PayoutErrorCode) -> None:
    p, t = rail()
    t.store.recipients["ann@example.com"] = outcome
    try:
        result = await p.create_payout(instruction(amount=amount))
    except PayoutProviderError as err:  # refused by the API: raised with a terminal code
        got = err.code
    else:
        assert result.status is P.FAILED
        assert result.error is not None
        got = result.error.code
    assert got is code
    assert not is_retryable(code)


async def test_insufficient_funds_are_retryable_and_order_nothing() -> None:
    p, t = rail()
    t.store.balances["USD"] = Decimal(1)
    with pytest.raises(PayoutProviderError) as err:
        await p.create_payout(instruction())
    assert err.value.code is C.INSUFFICIENT_PROVIDER_FUNDS
    assert is_retryable(err.value.code)
    assert t.store.created == 0


async def test_an_external_id_naming_another_order_is_a_duplicate_never_a_payment() -> None:
    p, t = rail()
    await p.create_payout(instruction(amount=2_510))
    conflicting = instruction(amount=9_900)  # same payout id, another amount
    result = await p.create_payout(conflicting)
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.DUPLICATE_REQUEST
    t.store.external_id_conflict = "reject"
    with pytest.raises(PayoutProviderError) as err:
        await p.create_payout(conflicting)  # 409: an order exists under this id; which one, the sync reads
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    result = await p.sync_status(lookup(conflicting))
    assert (result.status, result.error.code if result.error else None) == (P.FAILED, C.DUPLICATE_REQUEST)
    assert t.store.created == 1


async def test_a_409_for_our_own_order_placed_under_other_parameters_is_never_a_final_failure() -> None:
    """The first request placed the order (its answer lost); the providers file changed meanwhile (another product,
    another sender name) and the order is asked for again: the provider answers 409, an order exists under this
    external id. It is this payout's own order, delivered: a final `duplicate_request` would void the reservation
    while the player has the card."""
    transport = StoreTransport()
    transport.store.external_id_conflict = "reject"
    before = build_test_provider(transport)
    instr = instruction()
    transport.fail_next("timeout_after_success")
    with pytest.raises(PayoutProviderError):
        await before.create_payout(instr)
    after = build_test_provider(transport, recipient_name="Prizeflow Rewards Team")
    with pytest.raises(PayoutProviderError) as err:
        await after.create_payout(instr)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert (await after.sync_status(lookup(instr))).status is P.PAID
    assert transport.store.created == 1


async def test_a_bad_key_is_authentication_failed_logged_loudly_without_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = StoreTransport(api_key="TEST_another_key_entirely")
    p = build_test_provider(transport)
    with caplog.at_level(logging.DEBUG), pytest.raises(PayoutProviderError) as err:
        await p.create_payout(instruction())
    assert err.value.code is C.AUTHENTICATION_FAILED
    assert any(r.levelno == logging.ERROR for r in caplog.records)
    assert TEST_API_KEY not in caplog.text


# -- approvals and cancel -------------------------------------------------------------------------------------
async def test_an_order_awaiting_approval_is_pending_then_paid_or_cancelled() -> None:
    p, t = rail()
    t.store.recipients["ann@example.com"] = Outcome.APPROVAL
    first, second = instruction(1), instruction(2)
    held = await p.create_payout(first)
    assert (held.status, held.raw_status) == (P.PENDING, "PENDING APPROVAL/PENDING")
    t.store.approve(str(held.provider_ref))
    assert (await p.sync_status(lookup(first))).status is P.PAID
    with pytest.raises(PayoutProviderError) as err:
        await p.cancel(lookup(first))
    assert err.value.code is C.NOT_CANCELLABLE
    await p.create_payout(second)
    assert (await p.cancel(lookup(second))).status is P.CANCELLED
    assert (await p.cancel(lookup(second))).status is P.CANCELLED  # asked again: the same answer
    assert t.store.balances["USD"] == Decimal(1_000_000) - Decimal("25.10")
    with pytest.raises(PayoutProviderError) as missing:
        await p.cancel(lookup(instruction(3)))
    assert missing.value.code is C.PAYOUT_NOT_FOUND


# -- the card is never kept -----------------------------------------------------------------------------------
async def test_a_card_link_in_an_answer_never_leaves_the_adapter(caplog: pytest.LogCaptureFixture) -> None:
    p, t = rail()
    t.store.links_for_email = True  # the answers carry the emailed card's claim URL
    caplog.set_level(logging.DEBUG)
    instr = instruction()
    result = await p.create_payout(instr)
    synced = await p.sync_status(lookup(instr))
    order = t.store.orders[str(result.provider_ref)]
    assert order.reward.method == "EMAIL"
    assert "link" in order.to_json()["rewards"][0]["delivery"]  # the scan below looks for something there
    assert order.reward.link.split("/")[-1] not in result.model_dump_json() + synced.model_dump_json() + caplog.text


# -- webhooks -------------------------------------------------------------------------------------------------
def signed(doc: dict[str, Any], key: str = TEST_WEBHOOK_KEY) -> tuple[dict[str, str], bytes]:
    body = json.dumps(doc).encode()
    return {GIFTCARD_SIGNATURE_HEADER: giftcard_signature(key, body)}, body


async def test_a_webhook_is_verified_then_read_from_the_order_fetched_back() -> None:
    p, t = rail()
    result = await p.create_payout(instruction())
    events = {e.event: e for e in t.store.events}
    delivered = events["REWARDS.DELIVERY.SUCCEEDED"].to_json()
    ev = await p.parse_webhook(*signed(delivered))
    assert (ev.status, ev.provider_payout_ref, ev.verified, ev.idempotency_key) == (
        P.PAID,
        result.provider_ref,
        True,
        None,
    )
    created = await p.parse_webhook(*signed(events["ORDERS.CREATED"].to_json()))
    assert created.status is None  # says nothing new
    claimed_failed = {**delivered, "event": "REWARDS.DELIVERY.FAILED", "uuid": "other"}
    assert (await p.parse_webhook(*signed(claimed_failed))).status is None  # the order says otherwise


@pytest.mark.parametrize(
    "headers",
    [{}, {GIFTCARD_SIGNATURE_HEADER: "sha256=" + "0" * 64}, {GIFTCARD_SIGNATURE_HEADER: "v1=abc"}],
)
async def test_a_webhook_badly_signed_is_refused_before_anything_is_fetched(headers: dict[str, str]) -> None:
    p, t = rail()
    with pytest.raises(PayoutProviderError) as err:
        await p.parse_webhook(headers, b'{"event": "REWARDS.DELIVERY.SUCCEEDED"}')
    assert err.value.code is C.WEBHOOK_SIGNATURE_INVALID
    assert t.calls == []
    forged = signed({"event": "REWARDS.DELIVERY.SUCCEEDED", "uuid": "u"}, key="not-the-webhook-key-at-all")
    with pytest.raises(PayoutProviderError):
        await p.parse_webhook(*forged)
    assert t.calls == []


async def test_without_a_webhook_key_no_webhook_is_accepted() -> None:
    p, _ = rail(webhook=False)
    assert not giftcard_rail(p).terms.webhooks
    with pytest.raises(PayoutProviderError) as err:
        await p.parse_webhook(*signed({"event": "x", "uuid": "u"}))
    assert err.value.code is C.WEBHOOK_SIGNATURE_INVALID


# -- the mapping table ----------------------------------------------------------------------------------------
def _err(path: list[str], message: str) -> dict[str, Any]:
    node: Any = [message]
    for part in reversed(path):
        node = {part: node}
    return {"errors": {"message": "Validation failed", "payload": node}}


@pytest.mark.parametrize(
    ("status", "doc", "mutating", "code"),
    [
        (401, {}, True, C.AUTHENTICATION_FAILED),
        (403, {}, False, C.AUTHENTICATION_FAILED),
        (409, {}, True, C.DUPLICATE_REQUEST),
        (429, {}, True, C.RATE_LIMITED),
        (500, {}, True, C.TIMEOUT_UNKNOWN_OUTCOME),
        (503, {}, False, C.PROVIDER_UNAVAILABLE),
        (422, _err(["reward", "recipient", "email"], "is invalid"), True, C.INVALID_DESTINATION),
        (400, _err(["reward", "value", "denomination"], "is below the minimum of 5"), True, C.AMOUNT_BELOW_MINIMUM),
        (400, _err(["reward", "value", "denomination"], "is above the maximum of 500"), True, C.AMOUNT_ABOVE_MAXIMUM),
        (400, _err(["reward", "products"], "X is not available"), True, C.UNSUPPORTED_ASSET),
        (400, _err(["payment", "funding_source_id"], "has insufficient funds"), True, C.INSUFFICIENT_PROVIDER_FUNDS),
        (400, _err(["payment", "funding_source_id"], "is not a funding source"), True, C.INVALID_REQUEST),
        (400, {"errors": {"message": "nope"}}, True, C.INVALID_REQUEST),
        (404, {}, True, C.INVALID_REQUEST),
    ],
)
def test_api_errors_map_to_stable_codes(
    status: int, doc: dict[str, Any], mutating: bool, code: PayoutErrorCode
) -> None:
    error = GiftCardErrors("giftcards").classify(HttpRefusalError(status, doc), mutating=mutating)
    assert error.code is code
    assert error.retryable is is_retryable(code)


# -- a bounced card is refunded before the payout fails ---------------------------------------------------------
async def test_a_bounced_card_is_cancelled_at_the_provider_before_the_payout_is_reported_failed() -> None:
    p, t = rail()
    # A webhook `failed` only schedules the sync that refunds first.
    assert giftcard_rail(p).terms.settles_failures_on_sync
    t.store.recipients["ann@example.com"] = Outcome.DELIVERY_FAILED
    instr = instruction()
    t.fail_next("pass", "server_error")  # the order is placed; the refund's first attempt fails
    with pytest.raises(PayoutProviderError):
        await p.create_payout(instr)
    assert t.store.created == 1
    result = await p.sync_status(lookup(instr))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.INVALID_DESTINATION
    assert t.store.balances["USD"] == Decimal(1_000_000)  # the card's value is back on the funding source
    assert [e.event for e in t.store.events][-1] == "REWARDS.CANCELED"


@pytest.mark.parametrize("rid", ["../orders", "X?external_id=po-1", "a/b", "", "x" * 65])
async def test_a_signed_event_naming_a_malformed_resource_is_refused_before_any_call(rid: str) -> None:
    p, t = rail()
    event = {
        "event": "REWARDS.DELIVERY.SUCCEEDED",
        "uuid": "u",
        "payload": {"resource": {"id": rid, "type": "rewards"}},
    }
    with pytest.raises(PayoutProviderError) as err:
        await p.parse_webhook(*signed(event))
    assert err.value.code is C.INVALID_REQUEST
    assert t.calls == []


# -- a bounced card whose cancel is refused: the order read again decides --------------------------------------
def bounced(t: StoreTransport) -> None:
    t.store.recipients["ann@example.com"] = Outcome.DELIVERY_FAILED


async def _place_bounced(p: GiftCardPayoutProvider, t: StoreTransport) -> tuple[PayoutInstruction, str]:
    bounced(t)
    instr = instruction()
    t.fail_next("pass", "server_error")  # the order is placed; its refund waits for the sync
    with pytest.raises(PayoutProviderError):
        await p.create_payout(instr)
    [order] = t.store.orders.values()
    return instr, order.reward.id


async def test_a_bounced_card_redelivered_before_its_cancel_is_paid_not_failed() -> None:
    p, t = rail()
    instr, reward_id = await _place_bounced(p, t)
    t.before("POST", f"/rewards/{reward_id}/cancel", lambda s: s.resend(reward_id))  # redelivered meanwhile
    result = await p.sync_status(lookup(instr))
    assert result.status is P.PAID
    assert t.store.rewards[reward_id].delivery_status == "SUCCEEDED"
    assert t.store.balances["USD"] == Decimal(1_000_000) - Decimal("25.10")  # the card was paid for, and is held


async def test_a_bounced_card_redeemed_before_its_cancel_is_paid_not_failed() -> None:
    p, t = rail()
    instr, reward_id = await _place_bounced(p, t)
    t.before("POST", f"/rewards/{reward_id}/cancel", lambda s: s.redeem(reward_id))
    result = await p.sync_status(lookup(instr))
    assert result.status is P.PAID
    assert result.raw_status == "EXECUTED/FAILED/redeemed"


async def test_a_cancel_refused_by_our_key_keeps_the_payout_pending_with_an_error_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p, t = rail()
    instr, reward_id = await _place_bounced(p, t)
    t.fail_next("pass", "unauthorized")  # the read passes, the cancel is refused with a 401
    with caplog.at_level(logging.WARNING):
        result = await p.sync_status(lookup(instr))
    assert result.status is P.PENDING  # never failed while the value is not back
    assert result.raw_status == "EXECUTED/FAILED/cancel_refused"
    assert t.store.balances["USD"] == Decimal(1_000_000) - Decimal("25.10")
    assert any(r.levelno == logging.ERROR and "could not be cancelled" in r.getMessage() for r in caplog.records)
    assert "ann@example.com" not in caplog.text
    # Once the key works again the next sync refunds the card, then fails the payout.
    after = await p.sync_status(lookup(instr))
    assert after.status is P.FAILED
    assert t.store.balances["USD"] == Decimal(1_000_000)
    assert t.store.rewards[reward_id].delivery_status == "CANCELED"


async def test_a_bounced_card_cancelled_meanwhile_fails_the_payout() -> None:
    p, t = rail()
    instr, reward_id = await _place_bounced(p, t)
    t.before("POST", f"/rewards/{reward_id}/cancel", lambda s: s.cancel_reward(reward_id))  # another sync won
    result = await p.sync_status(lookup(instr))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.INVALID_DESTINATION
    assert t.store.balances["USD"] == Decimal(1_000_000)


# -- an order under our id that is not this payout is never reported paid --------------------------------------
async def _foreign_order(t: StoreTransport, instr: PayoutInstruction, **change: Any) -> str:
    """Another environment on the same account placed an order under this payout's (deterministic) id."""
    other = build_test_provider(t)
    theirs = instr.model_copy(update=change)
    result = await other.create_payout(theirs)
    assert result.status is P.PAID
    return str(result.provider_ref)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Money(asset="USD", amount=9_900)},
        {"destination": PayoutDestination(type=DestinationType.EMAIL, address="bob@example.com")},
    ],
)
async def test_sync_of_a_foreign_order_under_our_external_id_is_a_duplicate_never_paid(
    change: dict[str, Any],
) -> None:
    p, t = rail()
    instr = instruction()
    theirs = await _foreign_order(t, instr, **change)
    result = await p.sync_status(lookup(instr))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.DUPLICATE_REQUEST
    # Its id never becomes this payout's reference (its events are not this payout's); support reads it here.
    assert (result.provider_ref, result.raw_status) == (None, f"external_id_conflict/{theirs}")
    # A lookup without amount nor destination (an older caller) checks what it can: the external id.
    assert (await p.sync_status(lookup(instr, full=False))).status is P.PAID


async def test_cancel_never_touches_a_foreign_order_under_our_external_id() -> None:
    p, t = rail()
    t.store.recipients["bob@example.com"] = Outcome.APPROVAL
    instr = instruction()
    ref = await _foreign_order_pending(t, instr)
    with pytest.raises(PayoutProviderError) as err:
        await p.cancel(lookup(instr))
    assert err.value.code is C.DUPLICATE_REQUEST
    assert t.store.orders[ref].status == "PENDING APPROVAL"  # not rejected
    assert ("POST", f"/order_approvals/{ref}/reject") not in t.calls


async def _foreign_order_pending(t: StoreTransport, instr: PayoutInstruction) -> str:
    other = build_test_provider(t)
    bob = PayoutDestination(type=DestinationType.EMAIL, address="bob@example.com")
    result = await other.create_payout(instr.model_copy(update={"destination": bob}))
    assert result.status is P.PENDING
    return str(result.provider_ref)


async def test_sync_reads_the_order_by_its_reference_once_known() -> None:
    p, t = rail()
    instr = instruction()
    created = await p.create_payout(instr)
    ref = str(created.provider_ref)
    t.calls.clear()
    assert (await p.sync_status(lookup(instr, ref=ref))).status is P.PAID
    assert t.calls == [("GET", f"/orders/{ref}")]
    # A reference the account does not know: the external id is searched instead.
    t.calls.clear()
    assert (await p.sync_status(lookup(instr, ref="UNKNOWNREF1"))).status is P.PAID
    assert t.calls == [("GET", "/orders/UNKNOWNREF1"), ("GET", "/orders")]


# -- a late word after `paid` (issue 31): never `paid` again, always reported so the core can judge it -----------
async def test_a_delivered_card_the_provider_cancels_later_is_reported_cancelled_by_sync_and_webhook() -> None:
    p, t = rail()
    instr = instruction()
    paid = await p.create_payout(instr)
    assert paid.status is P.PAID
    reward_id = t.store.orders[str(paid.provider_ref)].reward.id
    delivered = next(e for e in t.store.events if e.event == "REWARDS.DELIVERY.SUCCEEDED").to_json()
    t.store.cancel_delivered(reward_id)
    cancelled = next(e for e in t.store.events if e.event == "REWARDS.CANCELED").to_json()
    synced = await p.sync_status(lookup(instr, ref=paid.provider_ref))
    assert (synced.status, synced.provider_ref, synced.raw_status) == (
        P.CANCELLED,
        paid.provider_ref,
        "EXECUTED/CANCELED",
    )
    assert (await p.parse_webhook(*signed(cancelled))).status is P.CANCELLED
    # The delivery event replayed (or arriving late) says nothing: the order no longer says delivered.
    assert (await p.parse_webhook(*signed({**delivered, "uuid": "replayed"}))).status is None


async def test_a_delivered_card_whose_email_bounces_later_is_cancelled_and_reported_failed_never_paid() -> None:
    p, t = rail()
    instr = instruction()
    paid = await p.create_payout(instr)
    order = t.store.orders[str(paid.provider_ref)]
    balance = t.store.balances["USD"]
    t.store.bounce_after_delivery(order.reward.id)
    bounced = [e for e in t.store.events if e.event == "REWARDS.DELIVERY.FAILED"][-1].to_json()
    assert (await p.parse_webhook(*signed(bounced))).status is P.FAILED
    synced = await p.sync_status(lookup(instr, ref=paid.provider_ref))
    assert synced.status is P.FAILED  # the undelivered card is cancelled first: its value is back
    assert synced.error is not None
    assert synced.error.code is C.INVALID_DESTINATION
    assert order.reward.delivery_status == "CANCELED"
    assert t.store.balances["USD"] == balance + Decimal("25.10")
    # Later syncs keep saying it is not paid (the card is cancelled; it can be neither resent nor redeemed).
    assert (await p.sync_status(lookup(instr, ref=paid.provider_ref))).status is P.CANCELLED
