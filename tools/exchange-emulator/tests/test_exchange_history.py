"""The withdrawal history as Binance pages it (offset/limit, a window of at most 90 days), and each injected
discrepancy as the history then shows it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from prizeflow_exchange_emulator.discrepancies import DiscrepancyError, inject
from prizeflow_exchange_emulator.settings import WhitelistEntry
from prizeflow_exchange_emulator.state import MAX_HISTORY_WINDOW_MS, Account, ExchangeError

ETH_ADDR = "0x" + "ab" * 20
DAY_MS = 86_400_000


def _account() -> Account:
    return Account(balances={"USDC": Decimal(1000)}, whitelist={WhitelistEntry("ETH", ETH_ADDR)})


def _paid(acc: Account, n: int, at: float) -> str:
    w = acc.withdraw(
        {"coin": "USDC", "network": "ETH", "address": ETH_ADDR, "amount": "10", "withdrawOrderId": f"pf{n}"}, at
    )
    acc.settle(w.id, "completed", at + 1)
    return w.id


def _all(acc: Account, now: float, **params: str) -> list[dict[str, Any]]:
    return acc.history({"startTime": "0", "endTime": str(int(now * 1000)), **params}, now)


def test_pages_by_offset_and_limit_newest_first() -> None:
    acc = _account()
    ids = [_paid(acc, n, 100.0 + n) for n in range(5)]
    pages = [_all(acc, 200.0, offset=str(o), limit="2") for o in (0, 2, 4, 6)]
    assert [[w["id"] for w in p] for p in pages] == [ids[4:2:-1], ids[2:0:-1], ids[:1], []]


def test_the_window_is_at_most_90_days_and_both_ends_count() -> None:
    acc = _account()
    _paid(acc, 1, 1000.0)
    assert len(acc.history({"startTime": "1000000", "endTime": "1000000"}, 2000.0)) == 1
    assert acc.history({"startTime": "1000001"}, 2000.0) == []
    assert len(acc.history({"startTime": "0", "endTime": str(MAX_HISTORY_WINDOW_MS)}, 2000.0)) == 1
    with pytest.raises(ExchangeError) as err:
        acc.history({"startTime": "0", "endTime": str(MAX_HISTORY_WINDOW_MS + 1)}, 2000.0)
    assert err.value.code == -1127
    old = 200 * DAY_MS / 1000
    assert acc.history({}, old) == []  # neither end: the last 90 days only


def _row(acc: Account, wid: str) -> dict[str, Any]:
    return next(w for w in _all(acc, 500.0) if w["id"] == wid)


def test_amount_destination_fee_and_reversal_change_the_withdrawal_as_listed() -> None:
    acc = _account()
    wid = _paid(acc, 1, 100.0)
    assert (_row(acc, wid)["amount"], _row(acc, wid)["transactionFee"]) == ("8.5", "1.5")
    assert inject(acc, {"kind": "fee", "reference": "pf1", "amount": 5_000_000}, 200.0) == f"{wid}:fee"
    assert (_row(acc, wid)["amount"], _row(acc, wid)["transactionFee"]) == ("8.0", "2.0")  # same gross
    assert inject(acc, {"kind": "amount", "reference": wid, "amount": 120_000_000}, 200.0) == wid
    assert Decimal(_row(acc, wid)["amount"]) + Decimal(_row(acc, wid)["transactionFee"]) == 12
    assert inject(acc, {"kind": "destination", "reference": "pf1", "destination": "0x" + "cd" * 20}, 200.0) == wid
    assert _row(acc, wid)["address"] == "0x" + "cd" * 20
    before = acc.balances["USDC"]
    assert inject(acc, {"kind": "reversal", "reference": "pf1"}, 300.0) == f"{wid}:reversal"
    row = _row(acc, wid)
    assert (row["status"], row["completeTime"], bool(row["txId"])) == (5, "1970-01-01 00:05:00", True)
    assert acc.balances["USDC"] == before + 12


def test_unrequested_duplicate_and_missing() -> None:
    acc = _account()
    wid = _paid(acc, 1, 100.0)
    twin = inject(acc, {"kind": "duplicate", "reference": "pf1"}, 200.0)
    assert twin not in (None, wid)
    assert [w["withdrawOrderId"] for w in _all(acc, 500.0)] == ["pf1", "pf1"]
    stray = inject(acc, {"kind": "unrequested", "amount": 30_000_000, "asset": "USDC", "destination": "0xfe"}, 300.0)
    row = _row(acc, str(stray))
    assert (row["amount"], row["transactionFee"], row["status"], "withdrawOrderId" in row) == ("3", "0", 6, False)
    assert inject(acc, {"kind": "missing", "reference": wid}, 400.0) is None
    assert {w["id"] for w in _all(acc, 500.0)} == {twin, stray}
    assert acc.balances["USDC"] == Decimal(1000) - 10 - 3  # the missing one's money back, the twin's gone


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "nope"}, 400),
        ({"kind": "missing", "reference": "unknown"}, 404),
        ({"kind": "reversal", "reference": "pf1", "amount": 1}, 400),  # never part of one
        ({"kind": "fee", "reference": "pf1"}, 400),
        ({"kind": "unrequested", "amount": 5}, 400),
    ],
)
def test_refused_discrepancies(body: dict[str, Any], status: int) -> None:
    acc = _account()
    _paid(acc, 1, 100.0)
    with pytest.raises(DiscrepancyError) as err:
        inject(acc, body, 200.0)
    assert err.value.status == status
