"""The emulator as a process, driven by python-telegram-bot (the library the payouts rail uses) through its
`base_url`: answers, errors and faults as the library reads Telegram's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import telegram
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TimedOut
from telegram.request import HTTPXRequest

from prizeflow_testkit.telegram import GIFTS, TelegramAdmin, TelegramEmulator, telegram_emulator

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelegramEmulator]:
    log: Path = tmp_path_factory.mktemp("telegram-emulator") / "emulator.log"
    with telegram_emulator(log, env={"TELEGRAM_EMULATOR_HANG_MS": "3000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: TelegramEmulator) -> AsyncIterator[TelegramAdmin]:
    async with emulator.admin() as a:
        await a.reset()
        yield a


def bot(emulator: TelegramEmulator, token: str | None = None, read_timeout: float = 30.0) -> telegram.Bot:
    """Generous timeouts (a loaded CI machine answers local requests in seconds), but for the test of a timeout."""
    return telegram.Bot(
        token or emulator.token,
        base_url=f"{emulator.url}/bot",
        request=HTTPXRequest(read_timeout=read_timeout, connect_timeout=10.0),
    )


async def test_gifts_balance_and_transactions_through_the_library(
    emulator: TelegramEmulator, admin: TelegramAdmin
) -> None:
    b = bot(emulator)
    async with b:
        gifts = await b.get_available_gifts()
        assert [(g.id, g.star_count) for g in gifts.gifts] == [(g["id"], g["star_count"]) for g in GIFTS]
        before = (await b.get_my_star_balance()).amount
        assert await b.send_gift(gift_id=str(GIFTS[0]["id"]), user_id=4242, text="prize") is True
        assert (await b.get_my_star_balance()).amount == before - 15
        txs = (await b.get_star_transactions()).transactions
        assert len(txs) == 1
        assert txs[0].amount == 15
        receiver = txs[0].receiver
        assert isinstance(receiver, telegram.TransactionPartnerUser)
        assert receiver.user.id == 4242
        assert receiver.transaction_type == "gift_purchase"


async def test_refund_only_of_a_real_charge(emulator: TelegramEmulator, admin: TelegramAdmin) -> None:
    charge = await admin.pay(77, 40)
    async with bot(emulator) as b:
        with pytest.raises(BadRequest, match=r"(?i)charge_not_found"):
            await b.refund_star_payment(78, charge)
        assert await b.refund_star_payment(77, charge) is True
        with pytest.raises(BadRequest, match=r"(?i)charge_already_refunded"):
            await b.refund_star_payment(77, charge)


async def test_errors_as_the_library_reads_them(emulator: TelegramEmulator, admin: TelegramAdmin) -> None:
    await admin.user(9, "blocked")
    async with bot(emulator) as b:
        with pytest.raises(Forbidden):
            await b.send_gift(gift_id=str(GIFTS[0]["id"]), user_id=9)
        with pytest.raises(BadRequest, match=r"(?i)stargift_invalid"):
            await b.send_gift(gift_id="no-such-gift", user_id=10)
        await admin.set_balance(1)
        with pytest.raises(BadRequest, match=r"(?i)balance_too_low"):
            await b.send_gift(gift_id=str(GIFTS[0]["id"]), user_id=10)
    with pytest.raises(InvalidToken):
        async with bot(emulator, token="1:wrong-token") as wrong:
            await wrong.get_me()
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{emulator.url}/bot{emulator.token}/sendGift", json={"user_id": 1, "gift_id": "x"})
        assert resp.json() == {"ok": False, "error_code": 400, "description": "Bad Request: STARGIFT_INVALID"}


async def test_faults(emulator: TelegramEmulator, admin: TelegramAdmin) -> None:
    gift = str(GIFTS[0]["id"])
    # Only the call that must time out gets a short read timeout: the others' errors are the emulator's answers.
    async with bot(emulator) as b, bot(emulator, read_timeout=0.5) as quick:
        await admin.fault("sendGift", "rate_limit", user_id=5, retry_after=3)
        with pytest.raises(RetryAfter):
            await b.send_gift(gift_id=gift, user_id=5)
        await admin.fault("sendGift", "server_error", user_id=5)
        with pytest.raises(NetworkError) as server_error:
            await b.send_gift(gift_id=gift, user_id=5)
        assert not isinstance(server_error.value, TimedOut)
        assert await admin.gifts_to(5) == []  # refused calls moved nothing
        await admin.fault("sendGift", "timeout_after_success", user_id=5)
        with pytest.raises(TimedOut):
            await quick.send_gift(gift_id=gift, user_id=5)
        assert len(await admin.gifts_to(5)) == 1  # carried out although the answer never came
        await admin.fault(None, "outage", count=None)
        with pytest.raises(NetworkError) as outage:
            await b.get_star_transactions()
        assert not isinstance(outage.value, TimedOut)
        await admin.clear_faults()
        assert len((await b.get_star_transactions()).transactions) == 1
