"""The gift-card rail's statement against the gift-card emulator (a real process, over HTTP): real payouts through
the adapter, then each of the seven discrepancy kinds injected at the emulator, and the statement shows exactly what
the kind means; a statement of more than one page."""

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
    ProviderPayoutStatus,
    StatementLine,
    StatementLineKind,
)
from prizeflow_payouts.adapters.giftcard import GiftCardPayoutProvider, build_giftcard
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec
from prizeflow_testkit.giftcard import GiftCardAdmin, GiftCardEmulator, giftcard_emulator
from prizeflow_testkit.giftcard_payouts import giftcard_provider_doc

pytestmark = pytest.mark.integration
K = StatementLineKind
P = ProviderPayoutStatus
KEY_ENV = "PAYOUTS_TEST_GIFTCARD_API_KEY"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GiftCardEmulator]:
    with giftcard_emulator(tmp_path_factory.mktemp("giftcard") / "emulator.log") as em:
        yield em


@pytest.fixture
async def admin(emulator: GiftCardEmulator) -> AsyncIterator[GiftCardAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


@pytest.fixture
async def rail(emulator: GiftCardEmulator, admin: GiftCardAdmin) -> AsyncIterator[GiftCardPayoutProvider]:
    entry = giftcard_provider_doc(api_key_env=KEY_ENV, webhook_key_env=None, api_base=emulator.url, timeout_s=2.0)
    spec = ProviderSpec.model_validate(entry, context={"env": {KEY_ENV: emulator.api_key}})
    ctx = ProviderContext(live_execution=False, database_url="postgresql://unused", provider_timeout_s=10)
    provider = build_giftcard(spec, ctx).payouts
    assert isinstance(provider, GiftCardPayoutProvider)
    try:
        yield provider
    finally:
        await provider.close()


async def pay(rail: GiftCardPayoutProvider, n: str, amount: int = 2_500) -> tuple[PayoutInstruction, str]:
    """A card ordered through the adapter; its instruction and the order's id (its provider_ref)."""
    instr = PayoutInstruction(
        payout_id=f"po-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USD", amount=amount),
        destination=PayoutDestination(type=DestinationType.EMAIL, address=f"player-{n}@example.com"),
    )
    result = await rail.create_payout(instr)
    assert result.status is P.PAID
    return instr, str(result.provider_ref)


async def inject(emulator: GiftCardEmulator, **body: Any) -> str | None:
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as http:
        resp = await http.post("/_emulator/discrepancies", json=body)
    assert resp.status_code == 201, resp.text
    line_id: str | None = resp.json()["line_id"]
    return line_id


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=5)


async def statement(rail: GiftCardPayoutProvider) -> list[StatementLine]:
    since, until = window()
    page = await rail.statement(since, until)
    out = list(page.lines)
    while page.next_cursor is not None:
        page = await rail.statement(since, until, page.next_cursor)
        out.extend(page.lines)
    return out


def of(lines: list[StatementLine], reference: str | None, kind: StatementLineKind = K.PAYOUT) -> list[StatementLine]:
    return [line for line in lines if line.reference == reference and line.kind is kind]


async def test_a_clean_day_is_one_payout_line_per_card_under_our_payout_id(rail: GiftCardPayoutProvider) -> None:
    made = [await pay(rail, f"clean-{n}", amount=1_000 + n) for n in range(3)]
    lines = await statement(rail)
    assert len(lines) == 3
    for n, (instr, ref) in enumerate(made):
        (line,) = of(lines, instr.payout_id)
        assert (line.line_id, line.amount, line.asset, line.provider_ref, line.destination) == (
            ref,
            1_000 + n,
            "USD",
            ref,
            instr.destination.address,
        )


async def test_unrequested_is_a_card_that_names_no_payout_of_ours(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider
) -> None:
    await pay(rail, "u")
    line_id = await inject(emulator, kind="unrequested", amount=1_500, asset="USD", destination="stranger@example.com")
    (line,) = [line for line in await statement(rail) if line.line_id == line_id]
    assert (line.kind, line.reference, line.amount, line.asset, line.destination) == (
        K.PAYOUT,
        None,
        1_500,
        "USD",
        "stranger@example.com",
    )


async def test_missing_leaves_no_line_for_the_payout(emulator: GiftCardEmulator, rail: GiftCardPayoutProvider) -> None:
    gone, _ = await pay(rail, "m1")
    kept, _ = await pay(rail, "m2")
    assert await inject(emulator, kind="missing", reference=gone.payout_id) is None
    lines = await statement(rail)
    assert [line for line in lines if line.reference == gone.payout_id] == []
    assert len(of(lines, kept.payout_id)) == 1


async def test_amount_shows_another_value_on_the_payouts_card(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider
) -> None:
    instr, ref = await pay(rail, "a", amount=2_500)
    line_id = await inject(emulator, kind="amount", reference=instr.payout_id, amount=2_600)
    (line,) = of(await statement(rail), instr.payout_id)
    assert (line.line_id, line.amount, line.provider_ref) == (line_id, 2_600, ref)


async def test_destination_shows_another_recipient_on_the_payouts_card(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider
) -> None:
    instr, _ = await pay(rail, "d")
    line_id = await inject(emulator, kind="destination", reference=instr.payout_id, destination="else@example.com")
    (line,) = of(await statement(rail), instr.payout_id)
    assert (line.line_id, line.destination, line.amount) == (line_id, "else@example.com", 2_500)


async def test_duplicate_is_a_second_card_with_the_same_reference_and_value(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider
) -> None:
    instr, ref = await pay(rail, "dup", amount=3_000)
    line_id = await inject(emulator, kind="duplicate", reference=instr.payout_id)
    twice = of(await statement(rail), instr.payout_id)
    assert len(twice) == 2
    assert {line.amount for line in twice} == {3_000}
    assert {line.destination for line in twice} == {instr.destination.address}
    assert {line.line_id for line in twice} == {ref, line_id}


@pytest.mark.parametrize("amount", [None, 1_000])
async def test_reversal_is_a_refund_line_of_the_payouts_order(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider, amount: int | None
) -> None:
    instr, ref = await pay(rail, "r", amount=2_500)
    body: dict[str, Any] = {"kind": "reversal", "reference": instr.payout_id}
    if amount is not None:
        body["amount"] = amount
    line_id = await inject(emulator, **body)
    lines = await statement(rail)
    (reversal,) = of(lines, instr.payout_id, K.REVERSAL)
    assert (reversal.line_id, reversal.amount, reversal.provider_ref) == (line_id, amount or 2_500, ref)
    assert len(of(lines, instr.payout_id)) == 1


async def test_fee_is_a_fee_line_of_that_amount_on_the_payouts_order(
    emulator: GiftCardEmulator, rail: GiftCardPayoutProvider
) -> None:
    instr, ref = await pay(rail, "f")
    line_id = await inject(emulator, kind="fee", reference=instr.payout_id, amount=125)
    lines = await statement(rail)
    (fee,) = of(lines, instr.payout_id, K.FEE)
    assert (fee.line_id, fee.amount, fee.provider_ref, fee.asset) == (line_id, 125, ref, "USD")
    assert of(lines, instr.payout_id)[0].amount == 2_500


async def test_a_statement_of_several_pages_lists_each_line_once(rail: GiftCardPayoutProvider) -> None:
    made = [await pay(rail, f"page-{n}", amount=100 + n) for n in range(5)]
    rail.statement_page_size = 2
    since, until = window()
    pages = [await rail.statement(since, until)]
    while pages[-1].next_cursor is not None:
        pages.append(await rail.statement(since, until, pages[-1].next_cursor))
    assert len(pages) == 3
    ids = [line.line_id for page in pages for line in page.lines]
    assert sorted(ids) == sorted(ref for _, ref in made)
    assert await rail.statement(since, until, pages[0].next_cursor) == pages[1]
