"""The Stripe rail against the Stripe emulator (a real process; the official library over HTTP): both modes, a
failure with its code, retries after 429/500 with the same key (one transfer), a timeout after success resolved
by sync (paid once), cancel of a pending payout, not cancellable, and a bank return after paid."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
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
from prizeflow_payouts.adapters.stripe import StripePayoutProvider, normalize_event
from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, stripe_emulator
from prizeflow_testkit.stripe_payouts import build_test_provider

pytestmark = pytest.mark.integration
C = PayoutErrorCode
P = ProviderPayoutStatus


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    log = tmp_path_factory.mktemp("stripe") / "emulator.log"
    with stripe_emulator(log, env={"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000,inr:100000000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: StripeEmulator) -> AsyncIterator[StripeAdmin]:
    async with emulator.admin() as a:
        await a.clear_faults()
        yield a


def rail(emulator: StripeEmulator, **options: Any) -> StripePayoutProvider:
    opts: dict[str, Any] = {"timeout_s": 2, "max_network_retries": 0, **options}
    return build_test_provider(api_base=emulator.url, api_key=emulator.api_key, **opts)


async def instruction(admin: StripeAdmin, n: str, amount: int = 1_000) -> PayoutInstruction:
    account = (await admin.create_account())["id"]
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address=account),
        metadata={"correlation_id": f"corr-{n}"},
    )


def lookup(instr: PayoutInstruction, ref: str | None = None) -> PayoutLookup:
    return PayoutLookup(payout_id=instr.payout_id, idempotency_key=instr.idempotency_key, provider_ref=ref)


async def transfers(admin: StripeAdmin, instr: PayoutInstruction) -> list[dict[str, object]]:
    """Transfers the emulator actually made for this payout (its `transfer.created` events)."""
    return [
        e["data"]["object"]
        for e in await admin.events("transfer.created")
        if e["data"]["object"]["metadata"].get("idempotency_key") == instr.idempotency_key
    ]


async def test_a_transfer_pays_at_once_and_sync_agrees(emulator: StripeEmulator, admin: StripeAdmin) -> None:
    p = rail(emulator)
    instr = await instruction(admin, "ok")
    try:
        result = await p.create_payout(instr)
        assert result.status is P.PAID
        assert (await p.sync_status(lookup(instr))).provider_ref == result.provider_ref
        assert (await admin.balance(instr.destination.address)).get("usd") == 1_000
        assert len(await transfers(admin, instr)) == 1
    finally:
        await p.close()


async def test_pending_then_paid_with_transfer_and_payout(emulator: StripeEmulator, admin: StripeAdmin) -> None:
    p = rail(emulator, mode="transfer_and_payout")
    instr = await instruction(admin, "tp")
    try:
        created = await p.create_payout(instr)
        assert created.status is P.PENDING
        ref = str(created.provider_ref)
        assert (await p.sync_status(lookup(instr, ref))).status is P.PENDING
        await admin.settle_payout(ref, "paid")
        assert (await p.sync_status(lookup(instr, ref))).status is P.PAID
        (payout_call,) = [r for r in await admin.requests(method="POST", path="/v1/payouts") if r.get("status") == 200]
        assert payout_call["idempotency_key"] == "key-tp:payout"
        assert payout_call["account"] == instr.destination.address
    finally:
        await p.close()


async def test_a_failure_carries_its_code_and_the_money_comes_back(
    emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    p = rail(emulator, mode="transfer_and_payout")
    instr = await instruction(admin, "fail")
    platform_before = (await admin.balance()).get("usd", 0)
    try:
        ref = str((await p.create_payout(instr)).provider_ref)
        await admin.settle_payout(ref, "failed", "account_closed")
        result = await p.sync_status(lookup(instr, ref))
        assert result.status is P.FAILED
        assert result.error is not None
        assert result.error.code is C.ACCOUNT_CLOSED
        assert not result.error.retryable
        assert (await admin.balance()).get("usd", 0) == platform_before  # reversed: back on the platform
        assert (await admin.balance(instr.destination.address)).get("usd", 0) == 0
    finally:
        await p.close()


async def test_a_refused_destination_fails_terminally(emulator: StripeEmulator, admin: StripeAdmin) -> None:
    p = rail(emulator)
    instr = await instruction(admin, "restricted")
    await admin.restrict_account(instr.destination.address, transfers="inactive")
    try:
        with pytest.raises(PayoutProviderError) as info:
            await p.create_payout(instr)
        assert info.value.code is C.DESTINATION_BLOCKED
        assert not info.value.retryable
        assert instr.destination.address not in str(info.value)
    finally:
        await p.close()


@pytest.mark.parametrize("fault", ["rate_limit", "api_error"])
async def test_a_retry_after_429_or_500_uses_the_same_key_and_moves_money_once(
    emulator: StripeEmulator, admin: StripeAdmin, fault: str
) -> None:
    p = rail(emulator)
    instr = await instruction(admin, f"retry-{fault}")
    await admin.fault(fault, method="POST", path_prefix="/v1/transfers")
    try:
        with pytest.raises(PayoutProviderError) as info:
            await p.create_payout(instr)
        assert info.value.retryable
        assert info.value.code is (C.RATE_LIMITED if fault == "rate_limit" else C.TIMEOUT_UNKNOWN_OUTCOME)
        with pytest.raises(PayoutProviderError) as nothing:  # what the worker does first: sync
            await p.sync_status(lookup(instr))
        assert nothing.value.code is C.PAYOUT_NOT_FOUND
        assert (await p.create_payout(instr)).status is P.PAID
        calls = [
            r
            for r in await admin.requests(method="POST", path="/v1/transfers")
            if r["idempotency_key"] == instr.idempotency_key
        ]
        assert len(calls) == 2
        assert len(await transfers(admin, instr)) == 1
    finally:
        await p.close()


async def test_the_library_retries_a_500_itself_with_the_same_key(emulator: StripeEmulator, admin: StripeAdmin) -> None:
    p = rail(emulator, max_network_retries=2)
    instr = await instruction(admin, "lib-retry")
    await admin.fault("api_error", method="POST", path_prefix="/v1/transfers", count=2)
    try:
        assert (await p.create_payout(instr)).status is P.PAID
        assert len(await transfers(admin, instr)) == 1
    finally:
        await p.close()


async def test_a_timeout_after_success_is_resolved_by_sync_and_paid_once(
    emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    p = rail(emulator, timeout_s=0.5)
    instr = await instruction(admin, "timeout")
    await admin.fault("timeout_after_success", method="POST", path_prefix="/v1/transfers", delay_ms=3_000)
    try:
        with pytest.raises(PayoutProviderError) as info:
            await p.create_payout(instr)
        assert info.value.code is C.TIMEOUT_UNKNOWN_OUTCOME
        synced = await p.sync_status(lookup(instr))
        assert synced.status is P.PAID
        assert (await p.create_payout(instr)).provider_ref == synced.provider_ref  # a retry replays, never a 2nd
        assert len(await transfers(admin, instr)) == 1
        assert (await admin.balance(instr.destination.address)).get("usd") == 1_000
    finally:
        await p.close()


async def test_a_pending_payout_is_cancelled_and_a_paid_one_is_not(
    emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    p = rail(emulator, mode="transfer_and_payout")
    pending, paid = await instruction(admin, "cancel"), await instruction(admin, "too-late")
    platform_before = (await admin.balance()).get("usd", 0)
    try:
        ref = str((await p.create_payout(pending)).provider_ref)
        assert (await p.cancel(lookup(pending, ref))).status is P.CANCELLED
        assert (await admin.balance()).get("usd", 0) == platform_before
        ref2 = str((await p.create_payout(paid)).provider_ref)
        await admin.settle_payout(ref2, "paid")
        with pytest.raises(PayoutProviderError) as info:
            await p.cancel(lookup(paid, ref2))
        assert info.value.code is C.NOT_CANCELLABLE
    finally:
        await p.close()


async def test_a_transfer_is_not_cancellable(emulator: StripeEmulator, admin: StripeAdmin) -> None:
    p = rail(emulator)
    instr = await instruction(admin, "transfer-cancel")
    try:
        ref = (await p.create_payout(instr)).provider_ref
        with pytest.raises(PayoutProviderError) as info:
            await p.cancel(lookup(instr, ref))
        assert info.value.code is C.UNSUPPORTED_OPERATION  # supports_cancel is false: never, not "too late"
        assert await admin.requests(method="POST", path=f"/v1/transfers/{ref}/reversals") == []
    finally:
        await p.close()


async def test_a_bank_return_after_paid_is_a_failed_event_after_the_paid_one(
    emulator: StripeEmulator, admin: StripeAdmin, tmp_path: Path
) -> None:
    p = rail(emulator, mode="transfer_and_payout")
    instr = await instruction(admin, "return")
    try:
        ref = str((await p.create_payout(instr)).provider_ref)
        await admin.settle_payout(ref, "paid")
        await admin.settle_payout(ref, "failed", "account_closed")
        ours = [
            normalize_event(e)
            for e in await admin.events()
            if e["type"].startswith("payout.") and e["data"]["object"]["id"] == ref
        ]
        statuses = [(e.kind, e.status) for e in ours if e.status in (P.PAID, P.FAILED)]
        assert statuses == [("payout.paid", P.PAID), ("payout.failed", P.FAILED)]
        assert ours[-1].idempotency_key == instr.idempotency_key
        assert ours[-1].error is not None
        assert ours[-1].error.code is C.ACCOUNT_CLOSED
    finally:
        await p.close()
