"""The crypto_exchange rail (ccxt's binance, real request signing over HTTP) against the exchange emulator, with
its books on real PostgreSQL: paid through statuses, the whitelist refusal's stable code, a memo rule, a short
balance and suspended withdrawals (retryable, nothing sent), the fee quoted, and every lost answer reconciled
without ever asking the exchange twice (by client id, and by address + amount + time where there is none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
)
from prizeflow_exchange_emulator.server import WITHDRAW
from prizeflow_payouts.adapters.exchange import ExchangeWithdrawalProvider, client_id_for
from prizeflow_testkit.db import fetch
from prizeflow_testkit.exchange import (
    ETH_ADDRESS,
    XLM_ADDRESS,
    XLM_MEMO,
    ExchangeStack,
    build_exchange_provider,
    exchange_emulator,
)

pytestmark = pytest.mark.integration
C = PayoutErrorCode
P = ProviderPayoutStatus
USDC_10 = 100_000_000  # 10 USDC at scale 7


@pytest.fixture
async def stack() -> AsyncIterator[ExchangeStack]:
    async with exchange_emulator() as s:
        yield s


@pytest.fixture
async def rail(stack: ExchangeStack, db: str) -> AsyncIterator[ExchangeWithdrawalProvider]:
    provider = build_exchange_provider(stack, database_url=db)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def usdc(n: str, *, address: str = ETH_ADDRESS, amount: int = USDC_10) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USDC", amount=amount),
        destination=PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=address),
    )


def xlm(n: str, memo: str | None = XLM_MEMO) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="XLM", amount=50_000_000),
        destination=PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=XLM_ADDRESS, memo=memo),
    )


def lookup(i: PayoutInstruction, ref: str | None = None) -> PayoutLookup:
    return PayoutLookup(payout_id=i.payout_id, idempotency_key=i.idempotency_key, provider_ref=ref)


async def record(db: str, payout_id: str) -> dict[str, Any]:
    rows = await fetch(db, "SELECT * FROM exchange_withdrawals WHERE payout_id = $1", payout_id)
    return dict(rows[0]) if rows else {}


async def test_paid_through_the_exchange_statuses_with_its_id_and_fee(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider, db: str
) -> None:
    i = usdc("ok")
    created = await rail.create_payout(i)
    assert created.status is P.SUBMITTED
    [w] = stack.withdrawals(client_id=client_id_for(i.idempotency_key))
    assert created.provider_ref == w["id"]
    assert (await record(db, i.payout_id))["state"] == "sent"
    assert (await rail.sync_status(lookup(i, created.provider_ref))).status is P.SUBMITTED
    stack.settle(w["id"], "completed")
    paid = await rail.sync_status(lookup(i, created.provider_ref))
    assert paid.status is P.PAID
    assert paid.fee == Money(asset="USDC", amount=15_000_000)  # 1.5 USDC, the ERC20 network's fee
    again = await rail.create_payout(i)  # asked again (a worker resumed): found, never made twice
    assert again.status is P.PAID
    assert stack.calls(WITHDRAW) == 1


async def test_a_failed_withdrawal_is_a_terminal_failure(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider
) -> None:
    i = xlm("fail")
    created = await rail.create_payout(i)
    stack.settle(str(created.provider_ref), "rejected")
    failed = await rail.sync_status(lookup(i))
    assert failed.status is P.FAILED
    assert failed.error is not None
    assert failed.error.code is C.TX_FAILED
    assert not failed.error.retryable


async def test_a_destination_off_the_whitelist_is_refused_with_a_stable_code(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider, db: str
) -> None:
    i = usdc("wl", address="0x" + "77" * 20)
    result = await rail.create_payout(i)
    assert result.status is P.FAILED
    assert result.error is not None
    assert (result.error.code, result.error.provider_code) == (C.DESTINATION_BLOCKED, "binance:-4035")
    assert "0x77" not in result.error.message
    assert (await record(db, i.payout_id))["state"] == "not_sent"
    with pytest.raises(PayoutProviderError) as err:
        await rail.sync_status(lookup(i))
    assert err.value.code is C.PAYOUT_NOT_FOUND  # nothing was made: a retry may ask again
    assert stack.withdrawals() == []


async def test_memo_rules_are_checked_before_anything_is_sent(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider
) -> None:
    result = await rail.create_payout(xlm("nomemo", memo=None))
    assert result.status is P.FAILED
    assert result.error is not None
    assert result.error.code is C.INVALID_DESTINATION
    assert stack.calls(WITHDRAW) == 0
    assert (await rail.create_payout(xlm("memo"))).status is P.SUBMITTED
    assert stack.withdrawals()[0]["addressTag"] == XLM_MEMO


async def test_short_balance_and_suspended_withdrawals_are_retryable_and_send_nothing(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider, db: str
) -> None:
    from decimal import Decimal

    stack.emulator.account.balances["USDC"] = Decimal(5)
    i = usdc("short")
    with pytest.raises(PayoutProviderError) as err:
        await rail.create_payout(i)
    assert (err.value.code, err.value.retryable) == (C.INSUFFICIENT_PROVIDER_FUNDS, True)
    assert (await record(db, i.payout_id))["state"] == "not_sent"
    stack.emulator.account.balances["USDC"] = Decimal(1000)
    stack.emulator.account.network("USDC", "ETH").withdraw_enable = False
    with pytest.raises(PayoutProviderError) as err:
        await rail.create_payout(i)
    assert (err.value.code, err.value.retryable) == (C.PROVIDER_UNAVAILABLE, True)
    stack.emulator.account.network("USDC", "ETH").withdraw_enable = True
    assert (await rail.create_payout(i)).status is P.SUBMITTED
    assert len(stack.withdrawals()) == 1
    assert (await record(db, i.payout_id))["requests"] == 3


async def test_the_fee_is_quoted_before_approval(stack: ExchangeStack, rail: ExchangeWithdrawalProvider) -> None:
    quote = await rail.quote(usdc("q"))
    assert quote.fee == Money(asset="USDC", amount=15_000_000)
    assert quote.receive_amount == Money(asset="USDC", amount=USDC_10 - 15_000_000)
    assert quote.expires_at is not None
    assert stack.calls(WITHDRAW) == 0


async def test_rate_limited_then_made_once(stack: ExchangeStack, rail: ExchangeWithdrawalProvider) -> None:
    stack.emulator.faults.add("rate_limit", method="POST", path_prefix=WITHDRAW)
    i = usdc("429")
    with pytest.raises(PayoutProviderError) as err:
        await rail.create_payout(i)
    assert err.value.code is C.RATE_LIMITED
    assert (await rail.create_payout(i)).status is P.SUBMITTED
    assert len(stack.withdrawals()) == 1


@pytest.mark.parametrize("fault", ["timeout_after_success", "server_error_after_success", "drop_after_success"])
async def test_a_lost_answer_is_reconciled_by_client_id_never_asked_again(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider, db: str, fault: str
) -> None:
    stack.emulator.faults.add(fault, method="POST", path_prefix=WITHDRAW, delay_ms=2500)
    i = usdc(f"lost-{fault}")
    with pytest.raises(PayoutProviderError) as err:
        await rail.create_payout(i)
    assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
    assert (await record(db, i.payout_id))["state"] == "submitting"
    resumed = await rail.create_payout(i)  # the worker's retry: reconciles, never withdraws again
    [w] = stack.withdrawals()
    assert (resumed.status, resumed.provider_ref) == (P.SUBMITTED, w["id"])
    assert stack.calls(WITHDRAW) == 1
    assert (await record(db, i.payout_id))["withdrawal_id"] == w["id"]


async def test_without_client_ids_a_lost_answer_is_matched_by_address_amount_and_time(
    stack: ExchangeStack, db: str
) -> None:
    rail = build_exchange_provider(stack, database_url=db, use_client_id=False)
    await rail.start()
    try:
        stack.emulator.account.history_lag_s = 3600  # the exchange's history lags behind its withdrawals
        stack.emulator.faults.add("drop_after_success", method="POST", path_prefix=WITHDRAW)
        i = usdc("nocid")
        with pytest.raises(PayoutProviderError):
            await rail.create_payout(i)
        assert "withdrawOrderId" not in stack.withdrawals()[0]
        for _ in range(3):  # not in the history yet: unknown, and never asked again
            with pytest.raises(PayoutProviderError) as err:
                await rail.sync_status(lookup(i))
            assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
        assert stack.calls(WITHDRAW) == 1
        stack.emulator.account.history_lag_s = 0
        found = await rail.sync_status(lookup(i))
        assert (found.status, found.provider_ref) == (P.SUBMITTED, stack.withdrawals()[0]["id"])
    finally:
        await rail.close()


async def test_two_candidates_are_left_to_an_operator(stack: ExchangeStack, db: str) -> None:
    rail = build_exchange_provider(stack, database_url=db, use_client_id=False)
    await rail.start()
    try:
        import time

        stack.emulator.faults.add("drop_after_success", method="POST", path_prefix=WITHDRAW)
        i = usdc("twins")
        with pytest.raises(PayoutProviderError):
            await rail.create_payout(i)
        # Someone withdrew the same amount to the same address by hand meanwhile: which one is ours is unknowable.
        stack.emulator.account.withdraw(
            {"coin": "USDC", "network": "ETH", "address": ETH_ADDRESS, "amount": "10"}, time.time()
        )
        with pytest.raises(PayoutProviderError) as err:
            await rail.sync_status(lookup(i))
        assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
        assert (await record(db, i.payout_id))["state"] == "submitting"
        assert stack.calls(WITHDRAW) == 1
    finally:
        await rail.close()


async def test_without_client_ids_a_sibling_in_flight_blocks_adoption(stack: ExchangeStack, db: str) -> None:
    rail = build_exchange_provider(stack, database_url=db, use_client_id=False)
    await rail.start()
    try:
        stack.emulator.faults.add("drop_after_success", method="POST", path_prefix=WITHDRAW)
        i, sibling = usdc("sib-a"), usdc("sib-b")
        with pytest.raises(PayoutProviderError):
            await rail.create_payout(i)
        # Another payout of the same address and amount has asked and waits for its answer: the one withdrawal in
        # the history may be its own.
        mine = await rail.book.get(i.payout_id)
        assert mine is not None
        _, fresh = await rail.book.begin_request(
            replace(mine, payout_id=sibling.payout_id, idempotency_key=sibling.idempotency_key)
        )
        assert fresh
        with pytest.raises(PayoutProviderError) as err:
            await rail.sync_status(lookup(i))
        assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
        assert (await record(db, i.payout_id))["state"] == "submitting"
        await rail.book.mark_not_sent(sibling.payout_id)  # its request was refused: the withdrawal is ours
        found = await rail.sync_status(lookup(i))
        assert (found.status, found.provider_ref) == (P.SUBMITTED, stack.withdrawals()[0]["id"])
        assert stack.calls(WITHDRAW) == 1
    finally:
        await rail.close()


async def test_without_client_ids_a_sibling_asking_the_amount_plus_the_fee_blocks_adoption(
    stack: ExchangeStack, db: str
) -> None:
    """Binance (and the emulator) report a withdrawal's amount net of its fee: a sibling to the same address asking
    10 + 1.5 makes a withdrawal of 10 that a payout of 10 would match. Neither adopts it while the other is in
    flight; once the payout of 10 is known not sent, the sibling's own withdrawal is its own."""
    rail = build_exchange_provider(stack, database_url=db, use_client_id=False)
    await rail.start()
    try:
        sibling, i = usdc("fee-b", amount=USDC_10 + 15_000_000), usdc("fee-a")
        stack.emulator.faults.add("drop_after_success", method="POST", path_prefix=WITHDRAW)
        with pytest.raises(PayoutProviderError):
            await rail.create_payout(sibling)  # made: 11.5 asked, 10 sent and reported, 1.5 fee
        stack.emulator.faults.add("server_error", method="POST", path_prefix=WITHDRAW)
        with pytest.raises(PayoutProviderError) as err:
            await rail.create_payout(i)  # never made, but nothing says so
        assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
        assert len(stack.withdrawals()) == 1
        with pytest.raises(PayoutProviderError) as err:
            await rail.sync_status(lookup(i))
        assert err.value.code is C.TIMEOUT_UNKNOWN_OUTCOME, "the sibling's withdrawal was adopted as this payout's"
        assert (await record(db, i.payout_id))["state"] == "submitting"
        with pytest.raises(PayoutProviderError):
            await rail.sync_status(lookup(sibling))  # ambiguous for the sibling too: an operator decides
        await rail.book.mark_not_sent(i.payout_id)  # the operator finds the payout of 10 was never made
        found = await rail.sync_status(lookup(sibling))
        assert (found.status, found.provider_ref) == (P.SUBMITTED, stack.withdrawals()[0]["id"])
        assert stack.calls(WITHDRAW) == 2
    finally:
        await rail.close()


async def test_a_wrong_secret_is_refused_by_the_exchange_signature_check(stack: ExchangeStack, db: str) -> None:
    stack.api_secret = "0" * 64
    rail = build_exchange_provider(stack, database_url=db)
    await rail.start()
    try:
        with pytest.raises(PayoutProviderError) as err:
            await rail.quote(usdc("badsig"))  # load_markets signs capital/config/getall
        assert err.value.code is C.AUTHENTICATION_FAILED
        assert stack.withdrawals() == []
    finally:
        await rail.close()


@pytest.mark.parametrize(
    ("reversal", "raw"), [("failure", "failed"), ("rejected", "failed"), ("cancelled", "canceled")]
)
async def test_a_withdrawal_reversed_after_ok_is_reported_failed_and_its_book_stays_sent(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider, db: str, reversal: str, raw: str
) -> None:
    i = usdc(f"reversed-{reversal}")
    created = await rail.create_payout(i)
    stack.settle(str(created.provider_ref), "completed")
    assert (await rail.sync_status(lookup(i, created.provider_ref))).status is P.PAID
    stack.reverse(str(created.provider_ref), reversal)  # the exchange's later word: the money is back on the account
    for late in (rail.sync_status(lookup(i, created.provider_ref)), rail.create_payout(i)):
        result = await late
        # Never `paid` from a withdrawal the exchange now says failed: the core judges the contradiction.
        assert (result.status, result.provider_ref, result.raw_status) == (P.FAILED, created.provider_ref, raw)
        assert result.error is not None
        assert result.error.code is C.TX_FAILED
    row = await record(db, i.payout_id)
    assert (row["state"], row["withdrawal_id"]) == ("sent", created.provider_ref)
    assert stack.calls(WITHDRAW) == 1  # never asked again: the amount back on the account is not "not sent"
