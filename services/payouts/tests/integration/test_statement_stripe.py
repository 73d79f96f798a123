"""The Stripe rail's statement against the Stripe emulator (a real process; the official library over HTTP): real
payouts through the adapter, then each of the seven discrepancy kinds injected at the emulator, and the statement
shows exactly what the kind means; a statement of more than one page; `transfer_and_payout` mode's lines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutStatus,
    StatementLine,
    StatementLineKind,
)
from prizeflow_payouts.adapters.stripe import StripePayoutProvider
from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, stripe_emulator
from prizeflow_testkit.stripe_payouts import build_test_provider

pytestmark = pytest.mark.integration
K = StatementLineKind
P = ProviderPayoutStatus


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    log = tmp_path_factory.mktemp("stripe") / "emulator.log"
    with stripe_emulator(log, env={"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000,inr:100000000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: StripeEmulator) -> AsyncIterator[StripeAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


@pytest.fixture
async def rail(emulator: StripeEmulator) -> AsyncIterator[StripePayoutProvider]:
    p = build_test_provider(api_base=emulator.url, api_key=emulator.api_key, timeout_s=2, max_network_retries=0)
    try:
        yield p
    finally:
        await p.close()


async def pay(
    admin: StripeAdmin, rail: StripePayoutProvider, n: str, amount: int = 1_000
) -> tuple[PayoutInstruction, str]:
    """A payout made through the adapter; its instruction and the transfer's id (its provider_ref)."""
    account = (await admin.create_account())["id"]
    instr = PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address=account),
    )
    result = await rail.create_payout(instr)
    assert result.status is P.PAID
    return instr, str(result.provider_ref)


async def inject(emulator: StripeEmulator, **body: Any) -> str | None:
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as http:
        resp = await http.post("/_emulator/discrepancies", json=body)
    assert resp.status_code == 201, resp.text
    line_id: str | None = resp.json()["line_id"]
    return line_id


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


async def statement(rail: StripePayoutProvider) -> list[StatementLine]:
    """Every line of the window, page after page, without the emulator's funding adjustments (CREDIT)."""
    since, until = window()
    page = await rail.statement(since, until)
    out = list(page.lines)
    while page.next_cursor is not None:
        page = await rail.statement(since, until, page.next_cursor)
        out.extend(page.lines)
    return [line for line in out if (line.kind, line.raw_type) != (K.CREDIT, "adjustment")]


def of(lines: list[StatementLine], reference: str | None, kind: StatementLineKind = K.PAYOUT) -> list[StatementLine]:
    return [line for line in lines if line.reference == reference and line.kind is kind]


async def test_a_clean_day_is_one_payout_line_per_payout_with_our_key_transfer_and_account(
    admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    made = [await pay(admin, rail, f"clean-{n}", amount=1_000 + n) for n in range(3)]
    lines = await statement(rail)
    assert len(lines) == 3
    for n, (instr, ref) in enumerate(made):
        (line,) = of(lines, instr.idempotency_key)
        assert (line.amount, line.asset, line.provider_ref, line.destination) == (
            1_000 + n,
            "USD",
            ref,
            instr.destination.address,
        )


async def test_unrequested_is_a_payout_line_that_names_no_payout_of_ours(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    await pay(admin, rail, "u")
    line_id = await inject(emulator, kind="unrequested", amount=777, asset="USD", destination="acct_stranger1")
    (line,) = [line for line in await statement(rail) if line.line_id == line_id]
    assert (line.kind, line.reference, line.amount, line.asset, line.destination) == (
        K.PAYOUT,
        None,
        777,
        "USD",
        "acct_stranger1",
    )


async def test_missing_leaves_no_line_for_the_payout(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    gone, _ = await pay(admin, rail, "m1")
    kept, _ = await pay(admin, rail, "m2")
    assert await inject(emulator, kind="missing", reference=gone.idempotency_key) is None
    lines = await statement(rail)
    assert [line for line in lines if line.reference == gone.idempotency_key] == []
    assert len(of(lines, kept.idempotency_key)) == 1


async def test_amount_shows_another_amount_on_the_payouts_line(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    instr, _ = await pay(admin, rail, "a", amount=1_000)
    line_id = await inject(emulator, kind="amount", reference=instr.idempotency_key, amount=1_234)
    (line,) = of(await statement(rail), instr.idempotency_key)
    assert (line.line_id, line.amount) == (line_id, 1_234)


async def test_destination_shows_another_account_on_the_payouts_line(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    instr, _ = await pay(admin, rail, "d")
    line_id = await inject(emulator, kind="destination", reference=instr.idempotency_key, destination="acct_elsewhere1")
    (line,) = of(await statement(rail), instr.idempotency_key)
    assert (line.line_id, line.destination, line.amount) == (line_id, "acct_elsewhere1", 1_000)
    assert line.destination != instr.destination.address


async def test_duplicate_is_a_second_payout_line_with_the_same_reference_and_amount(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    instr, ref = await pay(admin, rail, "dup", amount=2_000)
    line_id = await inject(emulator, kind="duplicate", reference=instr.idempotency_key)
    twice = of(await statement(rail), instr.idempotency_key)
    assert len(twice) == 2
    assert {line.amount for line in twice} == {2_000}
    assert {line.destination for line in twice} == {instr.destination.address}
    assert line_id in {line.line_id for line in twice}
    assert ref in {line.provider_ref for line in twice}
    assert len({line.provider_ref for line in twice}) == 2  # two transfers


@pytest.mark.parametrize("amount", [None, 300])
async def test_reversal_is_a_reversal_line_of_the_payout(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider, amount: int | None
) -> None:
    instr, ref = await pay(admin, rail, "r", amount=1_000)
    body: dict[str, Any] = {"kind": "reversal", "reference": instr.idempotency_key}
    if amount is not None:
        body["amount"] = amount
    line_id = await inject(emulator, **body)
    lines = await statement(rail)
    (reversal,) = of(lines, instr.idempotency_key, K.REVERSAL)
    assert (reversal.line_id, reversal.amount, reversal.provider_ref) == (line_id, amount or 1_000, ref)
    assert len(of(lines, instr.idempotency_key)) == 1  # the payout line is still there


async def test_fee_is_a_fee_line_of_that_amount_on_the_payout(
    emulator: StripeEmulator, admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    instr, ref = await pay(admin, rail, "f")
    line_id = await inject(emulator, kind="fee", reference=instr.idempotency_key, amount=42)
    lines = await statement(rail)
    (fee,) = of(lines, instr.idempotency_key, K.FEE)
    assert (fee.line_id, fee.amount, fee.provider_ref, fee.asset) == (line_id, 42, ref, "USD")
    assert of(lines, instr.idempotency_key)[0].amount == 1_000


async def test_a_statement_of_several_pages_lists_each_line_once(
    admin: StripeAdmin, rail: StripePayoutProvider
) -> None:
    made = [await pay(admin, rail, f"page-{n}", amount=100 + n) for n in range(5)]
    rail.statement_page_size = 2
    since, until = window()
    pages = [await rail.statement(since, until)]
    while pages[-1].next_cursor is not None:
        pages.append(await rail.statement(since, until, pages[-1].next_cursor))
    assert len(pages) >= 3
    ids = [line.line_id for page in pages for line in page.lines]
    assert len(ids) == len(set(ids))
    payouts = [line for page in pages for line in page.lines if line.kind is K.PAYOUT]
    assert sorted(str(line.reference) for line in payouts) == sorted(i.idempotency_key for i, _ in made)
    again = await rail.statement(since, until, pages[0].next_cursor)
    assert again == pages[1]


async def test_transfer_and_payout_lines_are_the_transfers_and_a_failed_bank_payout_comes_back(
    emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """In this mode the payout's provider_ref is the connected account's payout (po_), the line's the transfer (the
    platform's money left with it): matching is by reference. A bank payout that fails is pulled back."""
    p = build_test_provider(
        api_base=emulator.url, api_key=emulator.api_key, timeout_s=2, max_network_retries=0, mode="transfer_and_payout"
    )
    account = (await admin.create_account())["id"]
    instr = PayoutInstruction(
        payout_id="pay-tp",
        idempotency_key="key-tp",
        amount=Money(asset="USD", amount=900),
        destination=PayoutDestination(type=DestinationType.STRIPE_ACCOUNT, address=account),
    )
    try:
        created = await p.create_payout(instr)
        assert str(created.provider_ref).startswith("po_")
        await admin.settle_payout(str(created.provider_ref), "failed", "account_closed")
        lookup = PayoutLookup(payout_id="pay-tp", idempotency_key="key-tp", provider_ref=created.provider_ref)
        assert (await p.sync_status(lookup)).status is P.FAILED
        lines = await statement(p)
        (payout,) = of(lines, "key-tp")
        (back,) = of(lines, "key-tp", K.REVERSAL)
        assert payout.provider_ref == back.provider_ref
        assert str(payout.provider_ref).startswith("tr_")
        assert (payout.amount, back.amount, payout.destination) == (900, 900, account)
    finally:
        await p.close()
