"""The crypto_exchange rail's statement on a scripted ccxt history: what each withdrawal becomes (gross PAYOUT, its
fee inside it, a reversal dated when it came back), the window's bounds, and paging through offsets and 90-day
windows with a resumable cursor."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import ListsStatement, StatementLine, StatementLineKind
from prizeflow_payouts.adapters.exchange import ExchangeWithdrawalProvider, build_exchange
from prizeflow_payouts.adapters.exchange.statement import MAX_WINDOW_MS, Cursor, windows
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

K = StatementLineKind
ADDRESS = "0x" + "5a" * 20
ENV = {"EX_KEY": "key-value-123", "EX_SECRET": "secret-value-456"}
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def tx(
    wid: str, at: datetime, *, status: str = "ok", amount: float = 8.5, fee: float = 1.5, **more: Any
) -> dict[str, Any]:
    info: dict[str, Any] = {"id": wid, "withdrawOrderId": f"pf-{wid}", **more.pop("info", {})}
    return {
        "id": wid,
        "info": info,
        "timestamp": ms(at),
        "status": status,
        "amount": amount,
        "fee": {"currency": "USDC", "cost": fee},
        "currency": "USDC",
        "network": "ERC20",
        "address": ADDRESS,
        "txid": "0xabc" if status == "ok" else None,
        **more,
    }


class History:
    """ccxt's `fetch_withdrawals` over a scripted history, answering Binance's params (newest first)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = sorted(rows, key=lambda r: r["timestamp"], reverse=True)
        self.calls: list[dict[str, Any]] = []

    async def fetch_withdrawals(self, code: Any, since: Any, limit: Any, params: dict[str, Any]) -> list[Any]:
        assert (code, since, limit) == (None, None, None)
        assert params["endTime"] - params["startTime"] <= MAX_WINDOW_MS
        self.calls.append(dict(params))
        chosen = [r for r in self.rows if params["startTime"] <= r["timestamp"] <= params["endTime"]]
        return chosen[params["offset"] : params["offset"] + params["limit"]]

    async def close(self) -> None:
        return None


def rail(rows: list[dict[str, Any]], **options: Any) -> tuple[ExchangeWithdrawalProvider, History]:
    doc = {
        "name": "exchange",
        "type": "crypto_exchange",
        "assets": ["USDC"],
        "destination_types": ["crypto_address"],
        "secrets": {"api_key": "EX_KEY", "api_secret": "EX_SECRET"},
        "options": {
            "exchange": "binance",
            "api_base": "http://127.0.0.1:9",
            "timeout_s": 2,
            "assets": {"USDC": {"currency": "USDC", "network": "ERC20", "precision": 6}},
            **options,
        },
    }
    history = History(rows)
    s = ProviderSpec.model_validate(doc, context={"env": ENV})
    ctx = ProviderContext(live_execution=False, database_url="", provider_timeout_s=10)
    provider = build_exchange(s, ctx, exchange=history, book=None).payouts
    assert isinstance(provider, ExchangeWithdrawalProvider)
    return provider, history


async def read_all(
    provider: ExchangeWithdrawalProvider, since: datetime, until: datetime
) -> tuple[list[StatementLine], int]:
    lines: list[StatementLine] = []
    cursor, pages = None, 0
    while True:
        page = await provider.statement(since, until, cursor)
        pages += 1
        lines.extend(page.lines)
        if page.next_cursor is None:
            return lines, pages
        cursor = page.next_cursor


async def test_a_completed_withdrawal_is_its_gross_and_its_fee_inside_it() -> None:
    provider, _ = rail([tx("w1", T0)])
    assert isinstance(provider, ListsStatement)
    [payout, fee], _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert (payout.kind, payout.line_id, payout.amount, payout.asset) == (K.PAYOUT, "w1", 100_000_000, "USDC")
    assert (payout.reference, payout.provider_ref, payout.destination, payout.occurred_at) == (
        "pf-w1",
        "w1",
        ADDRESS,
        T0,
    )
    assert (fee.kind, fee.line_id, fee.amount, fee.reference, fee.provider_ref) == (
        K.FEE,
        "w1:fee",
        15_000_000,
        "pf-w1",
        "w1",
    )
    assert provider.fees_inside_payout


class Keys:
    """The rail's book as far as the statement asks it: which idempotency key each client id came from."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys
        self.asked: list[tuple[str, list[str]]] = []

    async def keys_of(self, provider: str, client_ids: list[str]) -> dict[str, str]:
        self.asked.append((provider, client_ids))
        return {c: self.keys[c] for c in client_ids if c in self.keys}


async def test_the_reference_is_our_idempotency_key_where_the_books_know_the_client_id() -> None:
    provider, _ = rail([tx("w1", T0), tx("w2", T0), tx("stray", T0, info={"withdrawOrderId": None})])
    keys = Keys({"pf-w1": "key-1", "pf-w2": "key-2"})
    provider._book = keys  # type: ignore[assignment]
    lines, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert {(x.line_id, x.reference) for x in lines} == {
        ("w1", "key-1"),
        ("w1:fee", "key-1"),
        ("w2", "key-2"),
        ("w2:fee", "key-2"),
        ("stray", None),
        ("stray:fee", None),
    }
    assert keys.asked == [("exchange", ["pf-w1", "pf-w2"])]
    keys.keys.clear()  # a client id the rail never sent: it stays as the exchange shows it
    lines, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert {x.reference for x in lines} == {"pf-w1", "pf-w2", None}


async def test_what_never_left_makes_no_line_and_a_free_withdrawal_no_fee_line() -> None:
    rows = [
        tx("pending", T0, status="pending"),
        tx("failed-before", T0, status="failed"),  # no txid: it never left
        tx("free", T0, fee=0.0),
    ]
    provider, _ = rail(rows)
    lines, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert [(x.line_id, x.kind) for x in lines] == [("free", K.PAYOUT)]


async def test_a_reversal_is_dated_when_it_came_back_and_found_by_looking_back() -> None:
    back = T0 + timedelta(days=2)
    reversed_ = tx("w1", T0, status="failed", txid="0xabc", info={"completeTime": back.strftime("%Y-%m-%d %H:%M:%S")})
    provider, _ = rail([reversed_])
    asked, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert [(x.kind, x.amount) for x in asked] == [(K.PAYOUT, 100_000_000), (K.FEE, 15_000_000)]
    later, _ = await read_all(provider, back, back + timedelta(hours=1))
    assert [(x.kind, x.line_id, x.amount, x.occurred_at) for x in later] == [
        (K.REVERSAL, "w1:reversal", 100_000_000, back)
    ]
    short, _ = rail([reversed_], statement_lookback_s=86_400)
    assert (await read_all(short, back, back + timedelta(hours=1)))[0] == []  # beyond the lookback


async def test_a_withdrawal_is_dated_when_it_completed() -> None:
    done = T0 + timedelta(minutes=3)
    asked_before = tx("w1", T0 - timedelta(minutes=2), info={"completeTime": done.strftime("%Y-%m-%d %H:%M:%S")})
    provider, _ = rail([asked_before])
    lines, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert [(x.line_id, x.occurred_at) for x in lines] == [("w1", done), ("w1:fee", done)]
    assert (await read_all(provider, T0 - timedelta(hours=1), T0))[0] == []


async def test_the_window_is_half_open() -> None:
    provider, _ = rail([tx("at-since", T0), tx("at-until", T0 + timedelta(hours=1))])
    lines, _ = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert {x.provider_ref for x in lines} == {"at-since"}


async def test_pages_by_offset_then_by_window_and_a_cursor_resumes() -> None:
    rows = [tx(f"w{n}", T0 + timedelta(minutes=n)) for n in range(5)]
    provider, history = rail(rows, statement_page_size=2, statement_lookback_s=200 * 86_400)
    lines, pages = await read_all(provider, T0, T0 + timedelta(hours=1))
    assert [x.line_id for x in lines if x.kind is K.PAYOUT] == ["w4", "w3", "w2", "w1", "w0"]
    assert len(windows(T0, T0 + timedelta(hours=1), 200 * 86_400)) == 3  # 200 days: three 90-day windows at most
    assert pages == 3 + 2  # three pages of the newest window (2 + 2 + 1), then one empty page per older window
    assert [(c["startTime"] <= ms(T0) <= c["endTime"], c["offset"]) for c in history.calls][:3] == [
        (True, 0),
        (True, 2),
        (True, 4),
    ]
    second = await provider.statement(T0, T0 + timedelta(hours=1), Cursor(0, 2).encode())
    assert [x.line_id for x in second.lines if x.kind is K.PAYOUT] == ["w2", "w1"]
    assert second.next_cursor == "0:4"


async def test_a_cursor_of_another_kind_is_refused() -> None:
    provider, _ = rail([])
    with pytest.raises(PayoutProviderError) as err:
        await provider.statement(T0, T0 + timedelta(hours=1), "next-page-please")
    assert err.value.code is PayoutErrorCode.INVALID_REQUEST


def test_windows_cover_the_lookback_in_at_most_90_days_each() -> None:
    spans = windows(T0, T0 + timedelta(hours=1), 100 * 86_400)
    assert spans[0][1] == ms(T0 + timedelta(hours=1)) - 1
    assert spans[-1][0] == ms(T0) - 100 * 86_400_000
    assert all(end - start <= MAX_WINDOW_MS for start, end in spans)
    assert all(older[1] == newer[0] - 1 for newer, older in itertools.pairwise(spans))
