"""The Telegram rail's statement on a scripted `getStarTransactions` (python-telegram-bot's own objects, parsed from
Bot API JSON): what each transaction becomes, the window found by a binary search over the chronological list
(calls counted), paging by offset with a resumable cursor."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import telegram

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import ListsStatement, StatementLine, StatementLineKind
from prizeflow_payouts.adapters.telegram import TelegramGiftProvider
from prizeflow_payouts.adapters.telegram.statement import Sent
from prizeflow_payouts.bootstrap import parse_config
from prizeflow_payouts.provider_spec import ProviderContext
from prizeflow_testkit.conformance.telegram import telegram_provider_doc
from prizeflow_testkit.telegram import TEST_TOKEN

K = StatementLineKind
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CTX = ProviderContext(live_execution=False, database_url="", provider_timeout_s=10)


def user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": f"Player {uid}"}


def gift_tx(tid: str, at: datetime, uid: int = 42, stars: int = 15) -> dict[str, Any]:
    partner = {"type": "user", "transaction_type": "gift_purchase", "user": user(uid)}
    return {"id": tid, "amount": stars, "date": int(at.timestamp()), "receiver": partner}


def refund_tx(tid: str, at: datetime, uid: int = 42, stars: int = 15) -> dict[str, Any]:
    partner = {"type": "user", "transaction_type": "gift_purchase", "user": user(uid)}
    return {"id": tid, "amount": stars, "date": int(at.timestamp()), "source": partner}


class Bot:
    """`get_star_transactions` over a chronological list, as Telegram's; every call's (offset, limit) kept."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.txs = [telegram.StarTransaction.de_json(r, None) for r in rows]
        self.calls: list[tuple[int, int]] = []

    async def get_star_transactions(self, *, offset: int, limit: int) -> Any:
        self.calls.append((offset, limit))
        return telegram.StarTransactions(transactions=self.txs[offset : offset + limit])


class Books:
    """The rail's books as the statement reads them (statements told apart by identity): transactions it matched
    to payouts, and the gifts it sent."""

    def __init__(self, claimed: dict[str, str] | None = None, sent: list[Sent] | None = None) -> None:
        self.claimed = claimed or {}
        self.sent = sent or []

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[Any]:  # the rail's unit of work, yielding these books
        yield self

    async def keys_of(self, provider: str, transaction_ids: Sequence[str]) -> dict[str, str]:
        assert provider == "telegram"
        return {t: k for t, k in self.claimed.items() if t in transaction_ids}

    async def sent_to(self, provider: str, users: Sequence[int], earliest: float, latest: float) -> list[Any]:
        assert provider == "telegram"
        return [
            (s.user_id, s.stars, s.idempotency_key, s.first_started_at)
            for s in self.sent
            if s.user_id in users and earliest <= s.first_started_at <= latest
        ]


def rail(rows: list[dict[str, Any]], page: int = 100, books: Books | None = None) -> tuple[TelegramGiftProvider, Bot]:
    entry: dict[str, Any] = telegram_provider_doc(
        name="telegram", api_base="http://127.0.0.1:1", token_env="TELEGRAM_BOT_TOKEN", settle_after_s=300
    )
    entry["options"] = {**entry["options"], "statement_page_size": page}
    p = next(iter(parse_config({"providers": [entry]}, CTX, env={"TELEGRAM_BOT_TOKEN": TEST_TOKEN}).registry)).provider
    assert isinstance(p, TelegramGiftProvider)
    bot = Bot(rows)
    p._bot = bot  # type: ignore[assignment]
    p._uow = books or Books()  # type: ignore[assignment]
    return p, bot


async def read_all(p: TelegramGiftProvider, since: datetime, until: datetime) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    cursor, pages = None, 0
    while True:
        page = await p.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_each_transaction_becomes_one_line() -> None:
    rows = [
        gift_tx("g1", T0),
        refund_tx("g1", T0 + timedelta(seconds=1)),
        {"id": "api1", "amount": 3, "date": int(T0.timestamp()) + 2,
         "receiver": {"type": "telegram_api", "request_count": 30}},
        {"id": "c1", "amount": 40, "date": int(T0.timestamp()) + 3,
         "source": {"type": "user", "transaction_type": "invoice_payment", "user": user(7)}},
        {"id": "c1", "amount": 40, "date": int(T0.timestamp()) + 4,
         "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": user(7)}},
    ]  # fmt: skip
    p, _ = rail(rows)
    assert isinstance(p, ListsStatement)
    lines, _ = await read_all(p, T0, T0 + timedelta(hours=1))
    got = [(x.line_id, x.kind, x.amount, x.reference, x.provider_ref, x.destination) for x in lines]
    assert got == [
        ("g1", K.PAYOUT, 15, None, "g1", "42"),
        ("g1:refund", K.REVERSAL, 15, None, "g1", "42"),
        ("api1", K.FEE, 3, None, None, None),
        ("c1:in", K.CREDIT, 40, None, "c1", None),
        ("c1:out", K.DEBIT, 40, None, "c1", "7"),
    ]
    assert {x.asset for x in lines} == {"XTR"}
    assert lines[0].occurred_at == T0


async def test_the_books_name_the_payout_of_a_gift_its_refund_and_a_second_gift_of_it() -> None:
    day = 86_400
    rows = [
        gift_tx("g1", T0, uid=42),  # matched by the rail to key-1
        gift_tx("g2", T0 + timedelta(seconds=30), uid=42),  # nobody's: a second gift of key-1 (same player, price)
        refund_tx("g1", T0 + timedelta(seconds=40), uid=42),  # Telegram gave g1 back: it carries g1's id
        gift_tx("g3", T0 + timedelta(seconds=50), uid=43),  # nobody's, and no gift was sent to 43: unrequested
        gift_tx("g4", T0 + timedelta(seconds=60), uid=44, stars=25),  # 44 was sent 15 Stars, not 25
        gift_tx("g5", T0 + timedelta(days=2), uid=45),  # 45's gift was sent more than a day before
    ]
    sent = [
        Sent(42, 15, "key-1", T0.timestamp() - 5),
        Sent(44, 15, "key-4", T0.timestamp()),
        Sent(45, 15, "key-5", T0.timestamp() - day),
    ]
    p, _ = rail(rows, books=Books(claimed={"g1": "key-1"}, sent=sent))
    lines, _ = await read_all(p, T0, T0 + timedelta(days=3))
    assert [(x.line_id, x.reference) for x in lines] == [
        ("g1", "key-1"),
        ("g2", "key-1"),
        ("g1:refund", "key-1"),
        ("g3", None),
        ("g4", None),
        ("g5", None),
    ]


async def test_the_window_is_found_by_binary_search_and_read_page_by_page() -> None:
    rows = [gift_tx(f"g{n}", T0 + timedelta(minutes=n), uid=100 + n) for n in range(1000)]
    p, bot = rail(rows, page=7)
    since, until = T0 + timedelta(minutes=500), T0 + timedelta(minutes=520)
    lines, pages = await read_all(p, since, until)
    assert [x.line_id for x in lines] == [f"g{n}" for n in range(500, 520)]
    assert pages == 3  # 7 + 7 + 6 lines, the third page reaching `until`
    probes = [c for c in bot.calls if c[1] == 1]
    assert len(probes) <= 2 * 11  # about 2 * log2(1000) one-transaction pages to find offset 500
    assert [c for c in bot.calls if c[1] == 7] == [(500, 7), (507, 7), (514, 7)]
    second = await p.statement(since, until, "507")  # a run resumed at its stored cursor
    assert [x.line_id for x in second.lines] == [f"g{n}" for n in range(507, 514)]
    assert second.next_cursor == "514"


@pytest.mark.parametrize(
    ("since_min", "until_min", "expected"),
    [
        (-10, 0, []),  # before everything: the window is empty
        (0, 1, ["g0"]),  # since inclusive, until exclusive
        (4, 100, ["g4"]),  # the last one
        (5, 100, []),  # after everything
    ],
)
async def test_window_edges(since_min: int, until_min: int, expected: list[str]) -> None:
    p, _ = rail([gift_tx(f"g{n}", T0 + timedelta(minutes=n)) for n in range(5)], page=2)
    lines, _ = await read_all(p, T0 + timedelta(minutes=since_min), T0 + timedelta(minutes=until_min))
    assert [x.line_id for x in lines] == expected


async def test_an_empty_history_and_a_foreign_cursor() -> None:
    p, _ = rail([])
    assert (await read_all(p, T0, T0 + timedelta(hours=1)))[0] == []
    with pytest.raises(PayoutProviderError) as err:
        await p.statement(T0, T0 + timedelta(hours=1), "0:5")
    assert err.value.code is PayoutErrorCode.INVALID_REQUEST
