"""The crypto_exchange rail's statement against the exchange emulator (ccxt's binance, real request signing) and the
rail's books on real PostgreSQL: real payouts paid through the rail, then each of the seven discrepancy kinds
injected through the emulator's admin API and seen in the statement as the withdrawal history shows it, read in
pages of two. A line's `reference` is our idempotency key: the withdrawal's client id, looked up in the books."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutDestination,
    PayoutInstruction,
    StatementLine,
    StatementLineKind,
)
from prizeflow_payouts.adapters.exchange import ExchangeWithdrawalProvider, client_id_for
from prizeflow_testkit.exchange import (
    ETH_ADDRESS,
    XLM_ADDRESS,
    XLM_MEMO,
    ExchangeStack,
    build_exchange_provider,
    exchange_emulator,
)

pytestmark = pytest.mark.integration
K = StatementLineKind
USDC_10 = 100_000_000  # 10 USDC at scale 7
USDC_FEE = 15_000_000  # 1.5 USDC: the ERC20 network's withdrawal fee
XLM_5 = 50_000_000
XLM_FEE = 100_000  # 0.01 XLM


@pytest.fixture
async def stack() -> AsyncIterator[ExchangeStack]:
    async with exchange_emulator() as s:
        yield s


@pytest.fixture
async def rail(stack: ExchangeStack, db: str) -> AsyncIterator[ExchangeWithdrawalProvider]:
    provider = build_exchange_provider(stack, database_url=db, statement_page_size=2)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()


def usdc(n: int) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="USDC", amount=USDC_10),
        destination=PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=ETH_ADDRESS),
    )


def xlm(n: int) -> PayoutInstruction:
    return PayoutInstruction(
        payout_id=f"pay-{n}",
        idempotency_key=f"key-{n}",
        amount=Money(asset="XLM", amount=XLM_5),
        destination=PayoutDestination(type=DestinationType.CRYPTO_ADDRESS, address=XLM_ADDRESS, memo=XLM_MEMO),
    )


async def pay(stack: ExchangeStack, rail: ExchangeWithdrawalProvider, i: PayoutInstruction) -> str:
    created = await rail.create_payout(i)
    assert created.provider_ref is not None
    stack.settle(created.provider_ref, "completed")
    return created.provider_ref


async def inject(stack: ExchangeStack, **body: Any) -> str | None:
    async with aiohttp.ClientSession() as http, http.post(f"{stack.url}/_emulator/discrepancies", json=body) as r:
        assert r.status == 201, await r.text()
        line_id: str | None = (await r.json())["line_id"]
        return line_id


async def read(rail: ExchangeWithdrawalProvider, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await rail.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


def by_ref(lines: list[StatementLine], i: PayoutInstruction, kind: StatementLineKind) -> list[StatementLine]:
    return [x for x in lines if x.reference == i.idempotency_key and x.kind is kind]


async def test_a_clean_window_lists_each_payout_and_its_fee_across_pages(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    paid = [usdc(n) for n in range(3)] + [xlm(3)]
    ids = [await pay(stack, rail, i) for i in paid]
    pending = await rail.create_payout(usdc(9))  # still processing at the exchange: nothing moved yet
    until = datetime.now(UTC) + timedelta(seconds=5)
    lines, pages = await read(rail, since, until)
    assert pages >= 3  # five withdrawals listed two a page
    assert len({x.line_id for x in lines}) == len(lines) == 8
    for i, wid in zip(paid, ids, strict=True):
        [payout] = by_ref(lines, i, K.PAYOUT)
        [fee] = by_ref(lines, i, K.FEE)
        assert (payout.line_id, payout.provider_ref, payout.destination) == (wid, wid, i.destination.address)
        assert (payout.asset, payout.amount) == (i.amount.asset, i.amount.amount)
        assert (fee.line_id, fee.provider_ref, fee.amount) == (
            f"{wid}:fee",
            wid,
            USDC_FEE if i.amount.asset == "USDC" else XLM_FEE,
        )
        assert since <= payout.occurred_at < until
    assert pending.provider_ref not in {x.provider_ref for x in lines}
    before, _ = await read(rail, since - timedelta(hours=1), since)
    assert before == []  # the window bounds the lines


async def test_each_injected_discrepancy_shows_in_the_statement(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    ps = [usdc(n) for n in range(5)] + [xlm(5)]
    ids = [await pay(stack, rail, i) for i in ps]
    ref = [client_id_for(i.idempotency_key) for i in ps]
    stray = "0x" + "e1" * 20
    unrequested = await inject(stack, kind="unrequested", amount=70_000_000, asset="USDC", destination=stray)
    assert await inject(stack, kind="missing", reference=ref[0]) is None
    assert await inject(stack, kind="amount", reference=ref[1], amount=90_000_000) == ids[1]
    assert await inject(stack, kind="destination", reference=ref[2], destination=stray) == ids[2]
    duplicate = await inject(stack, kind="duplicate", reference=ref[3])
    assert await inject(stack, kind="reversal", reference=ref[4]) == f"{ids[4]}:reversal"
    assert await inject(stack, kind="fee", reference=ref[5], amount=200_000) == f"{ids[5]}:fee"
    lines, pages = await read(rail, since, datetime.now(UTC) + timedelta(seconds=5))
    assert pages >= 4
    line = {x.line_id: x for x in lines}

    assert (line[str(unrequested)].kind, line[str(unrequested)].reference) == (K.PAYOUT, None)
    assert (line[str(unrequested)].amount, line[str(unrequested)].destination) == (70_000_000, stray)
    assert f"{ids[0]}:fee" not in line
    assert by_ref(lines, ps[0], K.PAYOUT) == []  # missing
    assert line[ids[1]].amount == 90_000_000  # amount
    assert line[ids[2]].destination == stray  # destination
    twins = by_ref(lines, ps[3], K.PAYOUT)  # duplicate: twice, same client id and amount
    assert {x.line_id for x in twins} == {ids[3], duplicate}
    assert {x.amount for x in twins} == {USDC_10}
    [back] = by_ref(lines, ps[4], K.REVERSAL)  # reversal: the whole withdrawal back; its payout still listed
    assert (back.line_id, back.provider_ref, back.amount) == (f"{ids[4]}:reversal", ids[4], USDC_10)
    assert [x.amount for x in by_ref(lines, ps[4], K.PAYOUT)] == [USDC_10]
    [fee] = by_ref(lines, ps[5], K.FEE)  # fee: more of the same gross kept by the exchange
    assert fee.amount == XLM_FEE + 200_000
    assert [x.amount for x in by_ref(lines, ps[5], K.PAYOUT)] == [XLM_5]


async def test_a_late_reversal_is_found_in_its_own_window(
    stack: ExchangeStack, rail: ExchangeWithdrawalProvider
) -> None:
    i = usdc(1)
    asked = datetime.now(UTC) - timedelta(seconds=5)
    wid = await pay(stack, rail, i)
    stack.emulator.account.withdrawals[wid].created -= 3 * 86_400  # asked for three days ago
    await inject(stack, kind="reversal", reference=client_id_for(i.idempotency_key))
    lines, _ = await read(rail, asked, datetime.now(UTC) + timedelta(seconds=5))
    assert [(x.kind, x.line_id) for x in lines] == [(K.REVERSAL, f"{wid}:reversal")]
