"""The Telegram rail's statement against the Bot API emulator (a process) and the rail's books on real PostgreSQL:
real gifts paid through the rail, then each of the seven discrepancy kinds injected through the emulator's admin API
and seen in the statement as `getStarTransactions` lists it, read in pages of two. `provider_ref` is the
transaction id; `reference` our idempotency key where the books name the payout."""

from __future__ import annotations

import secrets
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
from prizeflow_payouts.adapters.telegram import TelegramGiftProvider
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderContext
from prizeflow_runtime.db import create_engine
from prizeflow_testkit.conformance.telegram import telegram_provider_doc
from prizeflow_testkit.telegram import GIFTS, TelegramAdmin, TelegramEmulator, telegram_emulator

pytestmark = pytest.mark.integration
K = StatementLineKind
STARS = int(GIFTS[0]["star_count"])


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelegramEmulator]:
    log = tmp_path_factory.mktemp("telegram-emulator") / "emulator.log"
    with telegram_emulator(log) as em:
        yield em


@pytest.fixture
async def admin(emulator: TelegramEmulator) -> AsyncIterator[TelegramAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


@pytest.fixture
async def rail(emulator: TelegramEmulator, db: str) -> AsyncIterator[TelegramGiftProvider]:
    entry: dict[str, Any] = telegram_provider_doc(
        name="telegram", api_base=emulator.url, token_env="BOT_TOKEN", settle_after_s=600
    )
    entry["options"] = {**entry["options"], "statement_page_size": 2}
    ctx = ProviderContext(live_execution=False, database_url=db, provider_timeout_s=10)
    provider = next(
        iter(parse_config({"providers": [entry]}, ctx, env={"BOT_TOKEN": emulator.token}).registry)
    ).provider
    assert isinstance(provider, TelegramGiftProvider)
    engine = create_engine(db)
    provider.bind_database(engine)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.close()
        await engine.dispose()


def gift(user: int) -> PayoutInstruction:
    n = secrets.token_hex(6)
    return PayoutInstruction(
        payout_id=f"po-{n}",
        idempotency_key=f"claim-{n}:payout:1",
        amount=Money(asset="XTR", amount=STARS),
        destination=PayoutDestination(type=DestinationType.TELEGRAM_USER, address=str(user)),
    )


async def pay(rail: TelegramGiftProvider, i: PayoutInstruction) -> str:
    result = await rail.create_payout(i)
    assert result.status is ProviderPayoutStatus.PAID
    assert result.provider_ref is not None
    return result.provider_ref


async def inject(emulator: TelegramEmulator, **body: Any) -> str | None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        r = await http.post("/_emulator/discrepancies", json=body)
    assert r.status_code == 201, r.text
    line_id: str | None = r.json()["line_id"]
    return line_id


async def read(rail: TelegramGiftProvider, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
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


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(seconds=10), now + timedelta(seconds=10)


async def test_a_clean_window_lists_each_gift_by_its_transaction_id_across_pages(
    admin: TelegramAdmin, rail: TelegramGiftProvider
) -> None:
    since, until = window()
    paid = [gift(100 + n) for n in range(4)]
    refs = [await pay(rail, i) for i in paid]
    charge = await admin.pay(555, 40)  # a player paid the bot: money in, no payout
    lines, pages = await read(rail, since, until)
    assert pages >= 3
    payouts = [x for x in lines if x.kind is K.PAYOUT]
    assert [(x.line_id, x.provider_ref, x.reference, x.destination, x.asset, x.amount) for x in payouts] == [
        (ref, ref, i.idempotency_key, i.destination.address, "XTR", STARS) for ref, i in zip(refs, paid, strict=True)
    ]
    [other] = [x for x in lines if x.kind is K.CREDIT]
    assert (other.line_id, other.amount) == (f"{charge}:in", 40)
    assert all(since <= x.occurred_at < until for x in lines)
    later, _ = await read(rail, until, until + timedelta(hours=1))
    assert later == []  # the window bounds the lines


async def test_each_injected_discrepancy_shows_in_the_statement(
    emulator: TelegramEmulator, admin: TelegramAdmin, rail: TelegramGiftProvider
) -> None:
    since, until = window()
    paid = [gift(200 + n) for n in range(6)]
    refs = [await pay(rail, i) for i in paid]
    unrequested = await inject(emulator, kind="unrequested", amount=25, asset="XTR", destination="999")
    assert await inject(emulator, kind="missing", reference=refs[0]) is None
    assert await inject(emulator, kind="amount", reference=refs[1], amount=25) == refs[1]
    assert await inject(emulator, kind="destination", reference=refs[2], destination="998") == refs[2]
    duplicate = await inject(emulator, kind="duplicate", reference=refs[3])
    assert await inject(emulator, kind="reversal", reference=refs[4]) == f"{refs[4]}:refund"
    fee = await inject(emulator, kind="fee", reference=refs[5], amount=3)
    lines, pages = await read(rail, since, until)
    assert pages >= 4
    line = {x.line_id: x for x in lines}
    assert len(line) == len(lines)

    stray = line[str(unrequested)]
    assert (stray.kind, stray.amount, stray.destination, stray.reference) == (K.PAYOUT, 25, "999", None)
    assert refs[0] not in line  # missing
    assert (line[refs[1]].amount, line[refs[1]].reference) == (25, paid[1].idempotency_key)  # amount
    assert (line[refs[2]].destination, line[refs[2]].reference) == ("998", paid[2].idempotency_key)  # destination
    twin = line[str(duplicate)]  # duplicate: another purchase, same user and price, its own id
    assert (twin.kind, twin.destination, twin.amount, twin.provider_ref) == (K.PAYOUT, "203", STARS, duplicate)
    assert twin.reference == line[refs[3]].reference == paid[3].idempotency_key  # the books name it a second one
    back = line[f"{refs[4]}:refund"]  # reversal: the purchase's Stars back, carrying its id
    assert (back.kind, back.provider_ref, back.amount, back.destination) == (K.REVERSAL, refs[4], STARS, "204")
    assert back.reference == paid[4].idempotency_key
    assert line[refs[4]].kind is K.PAYOUT
    charge = line[str(fee)]  # fee: Telegram's charge to the bot, tied to no gift
    assert (charge.kind, charge.amount, charge.provider_ref, charge.raw_type) == (K.FEE, 3, None, "telegram_api")
    assert len([x for x in lines if x.kind is K.PAYOUT]) == 6 - 1 + 2  # six paid, one missing, the twin and the stray
