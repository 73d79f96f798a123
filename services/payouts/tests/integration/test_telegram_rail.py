"""The Telegram rail's books on real PostgreSQL against the Bot API emulator (a process): a gift is never sent twice
while its outcome is unknown, a refused call is sent again once, one unsettled gift per player and price, and the
bot's balance running dry is retryable. The kit (tests/conformance -k telegram) covers the payout workflow."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
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
from prizeflow_payouts.adapters.telegram import TelegramGiftProvider
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderContext
from prizeflow_runtime.db import create_engine
from prizeflow_testkit.conformance.telegram import telegram_provider_doc
from prizeflow_testkit.db import fetch
from prizeflow_testkit.telegram import GIFTS, TelegramAdmin, TelegramEmulator, telegram_emulator

C = PayoutErrorCode
P = ProviderPayoutStatus
STARS = int(GIFTS[0]["star_count"])

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelegramEmulator]:
    log = tmp_path_factory.mktemp("telegram-emulator") / "emulator.log"
    with telegram_emulator(log, env={"TELEGRAM_EMULATOR_HANG_MS": "2000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: TelegramEmulator) -> AsyncIterator[TelegramAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


@pytest.fixture
async def rail(emulator: TelegramEmulator, db: str) -> AsyncIterator[TelegramGiftProvider]:
    entry = telegram_provider_doc(name="telegram", api_base=emulator.url, token_env="BOT_TOKEN", settle_after_s=600)
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


def instruction(user: int, n: str | None = None, stars: int = STARS) -> PayoutInstruction:
    n = n or secrets.token_hex(6)
    return PayoutInstruction(
        payout_id=f"po-{n}",
        idempotency_key=f"claim-{n}:payout:1",
        amount=Money(asset="XTR", amount=stars),
        destination=PayoutDestination(type=DestinationType.TELEGRAM_USER, address=str(user)),
    )


def lookup(i: PayoutInstruction) -> PayoutLookup:
    return PayoutLookup(payout_id=i.payout_id, idempotency_key=i.idempotency_key)


def user() -> int:
    return secrets.randbelow(9 * 10**9) + 10**9


async def code_of(call: Any) -> C:
    with pytest.raises(PayoutProviderError) as err:
        await call
    return err.value.code


async def test_a_gift_is_paid_with_the_bots_transaction_as_reference_and_never_sent_again(
    rail: TelegramGiftProvider, admin: TelegramAdmin, db: str
) -> None:
    u = user()
    instr = instruction(u)
    first = await rail.create_payout(instr)
    assert first.status is P.PAID
    [gift] = await admin.gifts_to(u)
    assert first.provider_ref == gift["id"]
    assert (await rail.create_payout(instr)).provider_ref == gift["id"]  # the same key: the same gift
    assert (await rail.sync_status(lookup(instr))).provider_ref == gift["id"]
    assert len(await admin.gifts_to(u)) == 1
    [row] = await fetch(
        db, "SELECT state, sends, answered FROM telegram_gift_sends WHERE payout_id = $1", instr.payout_id
    )
    assert (row["state"], row["sends"], row["answered"]) == ("sent", 1, True)


async def test_an_unknown_outcome_is_never_sent_again_and_settles_from_the_transactions(
    rail: TelegramGiftProvider, admin: TelegramAdmin
) -> None:
    u = user()
    instr = instruction(u)
    await admin.fault("sendGift", "server_error", user_id=u)  # a 500: Telegram may have done it
    assert await code_of(rail.create_payout(instr)) is C.TIMEOUT_UNKNOWN_OUTCOME
    # Within settle_after_s and not in the transactions: still unknown, and create does not call sendGift again.
    assert await code_of(rail.sync_status(lookup(instr))) is C.TIMEOUT_UNKNOWN_OUTCOME
    assert await code_of(rail.create_payout(instr)) is C.TIMEOUT_UNKNOWN_OUTCOME
    assert len([c for c in await admin.calls("sendGift") if c["user_id"] == u]) == 1
    assert await admin.gifts_to(u) == []


async def test_a_lost_answer_is_matched_to_the_gift_that_landed(
    rail: TelegramGiftProvider, admin: TelegramAdmin
) -> None:
    u = user()
    instr = instruction(u)
    await admin.fault("sendGift", "timeout_after_success", user_id=u)
    assert await code_of(rail.create_payout(instr)) is C.TIMEOUT_UNKNOWN_OUTCOME
    [gift] = await admin.gifts_to(u)
    assert (await rail.sync_status(lookup(instr))).provider_ref == gift["id"]


async def test_a_refused_call_is_sent_again_once_and_a_dry_balance_is_retryable(
    rail: TelegramGiftProvider, admin: TelegramAdmin, db: str
) -> None:
    u = user()
    instr = instruction(u)
    await admin.set_balance(STARS - 1)
    assert await code_of(rail.create_payout(instr)) is C.INSUFFICIENT_PROVIDER_FUNDS
    assert await code_of(rail.sync_status(lookup(instr))) is C.PAYOUT_NOT_FOUND  # nothing moved: safe to create
    await admin.set_balance(1_000)
    assert (await rail.create_payout(instr)).status is P.PAID
    assert await admin.balance() == 1_000 - STARS
    [row] = await fetch(db, "SELECT state, sends FROM telegram_gift_sends WHERE payout_id = $1", instr.payout_id)
    assert (row["state"], row["sends"]) == ("sent", 2)


async def test_one_unsettled_gift_per_player_and_price(rail: TelegramGiftProvider, admin: TelegramAdmin) -> None:
    u = user()
    first, second = instruction(u), instruction(u)
    await admin.fault("sendGift", "server_error", user_id=u)
    assert await code_of(rail.create_payout(first)) is C.TIMEOUT_UNKNOWN_OUTCOME
    # A second gift of that price to that player could not be told apart from the first: it waits.
    assert await code_of(rail.create_payout(second)) is C.PROVIDER_UNAVAILABLE
    other_price = instruction(u, stars=int(GIFTS[1]["star_count"]))
    assert (await rail.create_payout(other_price)).status is P.PAID
    assert len([c for c in await admin.calls("sendGift") if c["user_id"] == u]) == 2


async def test_terminal_refusals_move_nothing(rail: TelegramGiftProvider, admin: TelegramAdmin) -> None:
    blocked, gone = user(), user()
    await admin.user(blocked, "blocked")
    await admin.user(gone, "deleted")
    assert await code_of(rail.create_payout(instruction(blocked))) is C.DESTINATION_BLOCKED
    assert await code_of(rail.create_payout(instruction(gone))) is C.DESTINATION_NOT_FOUND
    refused = await rail.create_payout(instruction(user(), stars=STARS + 1))
    assert refused.status is P.FAILED
    assert refused.error is not None
    assert refused.error.code is C.UNSUPPORTED_OPERATION
    assert await admin.calls("sendGift") == [
        c for c in await admin.calls("sendGift") if c["user_id"] in (blocked, gone)
    ]
    assert (await admin.state())["transactions"] == []


async def test_a_late_transaction_of_the_first_call_is_matched_after_a_send_again(
    rail: TelegramGiftProvider, admin: TelegramAdmin, db: str
) -> None:
    u = user()
    instr = instruction(u)
    await admin.fault("sendGift", "timeout_after_success", user_id=u)
    assert await code_of(rail.create_payout(instr)) is C.TIMEOUT_UNKNOWN_OUTCOME
    [gift] = await admin.gifts_to(u)
    # As if settled `refused` and sent again ten minutes later: the first call's gift must still be found.
    await fetch(db, "UPDATE telegram_gift_sends SET started_at = now() + interval '10 minutes' WHERE payout_id = $1",
                instr.payout_id)  # fmt: skip
    assert (await rail.sync_status(lookup(instr))).provider_ref == gift["id"]


async def test_the_scan_position_is_stored(rail: TelegramGiftProvider, admin: TelegramAdmin, db: str) -> None:
    """Where the scan of getStarTransactions resumes survives a restart (it is in the database, not the process)."""
    await fetch(db, "INSERT INTO telegram_star_scans (provider, floor) VALUES ('telegram', 7)")
    await rail.create_payout(instruction(user()))  # below offset 7: not seen, so `submitted`
    offsets = [str(c["params"].get("offset")) for c in await admin.calls("getStarTransactions")]
    assert offsets
    assert set(offsets) == {"7"}


async def test_a_gift_refunded_to_the_bot_after_it_was_paid_is_reported_returned_and_its_row_stays_sent(
    rail: TelegramGiftProvider, admin: TelegramAdmin, db: str
) -> None:
    u = user()
    instr = instruction(u)
    paid = await rail.create_payout(instr)
    assert paid.status is P.PAID
    before = await admin.balance()
    await admin.refund_gift(str(paid.provider_ref))  # Telegram gives the bot the gift's Stars back
    assert await admin.balance() == before + STARS
    for late in (rail.sync_status(lookup(instr)), rail.create_payout(instr)):
        result = await late
        assert (result.status, result.provider_ref, result.raw_status) == (
            P.RETURNED,
            paid.provider_ref,
            "gift_purchase_refunded",
        )
    assert len(await admin.calls("sendGift")) == 1  # never sent again: the Stars back do not make it unsent
    [row] = await fetch(
        db, "SELECT state, transaction_id FROM telegram_gift_sends WHERE payout_id = $1", instr.payout_id
    )
    assert (row["state"], row["transaction_id"]) == ("sent", paid.provider_ref)


async def test_a_gift_refunded_before_its_unknown_outcome_was_settled_is_matched_and_reported_returned(
    rail: TelegramGiftProvider, admin: TelegramAdmin, db: str
) -> None:
    u = user()
    instr = instruction(u)
    await admin.fault("sendGift", "timeout_after_success", user_id=u)  # carried out, the answer lost
    assert await code_of(rail.create_payout(instr)) is C.TIMEOUT_UNKNOWN_OUTCOME
    [gift] = await admin.gifts_to(u)
    await admin.refund_gift(gift["id"])
    result = await rail.sync_status(lookup(instr))
    assert (result.status, result.provider_ref) == (P.RETURNED, gift["id"])
    [row] = await fetch(db, "SELECT state FROM telegram_gift_sends WHERE payout_id = $1", instr.payout_id)
    assert row["state"] == "sent"  # matched: never `refused`, so never sent a second time
