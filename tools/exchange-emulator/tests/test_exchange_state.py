"""The emulated exchange's rules without a socket: signing, whitelist, memo, limits, balances, statuses."""

from __future__ import annotations

from decimal import Decimal

import pytest

from prizeflow_exchange_emulator.settings import WhitelistEntry, whitelist
from prizeflow_exchange_emulator.signing import sign, verify
from prizeflow_exchange_emulator.state import Account, ExchangeError

ETH_ADDR = "0x" + "ab" * 20
XLM_ADDR = "G" + "A" * 55
SECRET = "s" * 32


def _account() -> Account:
    return Account(
        balances={"USDC": Decimal(100), "XLM": Decimal(100)},
        whitelist={WhitelistEntry("ETH", ETH_ADDR), WhitelistEntry("XLM", XLM_ADDR, "123")},
    )


def _code(fn: object) -> int:
    with pytest.raises(ExchangeError) as err:
        fn()  # type: ignore[operator]
    return err.value.code


def test_signature_timestamp_and_key_are_verified() -> None:
    payload = "coin=USDC&amount=5&timestamp=1000"
    good = f"{payload}&signature={sign(SECRET, payload)}"
    args = {"api_key": "key", "secret": SECRET, "query": "", "now_ms": 1500, "recv_window_ms": 5000}
    assert verify(header_key="key", body=good, **args)["coin"] == "USDC"  # type: ignore[arg-type]
    assert _code(lambda: verify(header_key="other", body=good, **args)) == -2015  # type: ignore[arg-type]
    assert _code(lambda: verify(header_key="key", body=good.replace("5&", "6&"), **args)) == -1022  # type: ignore[arg-type]
    late = {**args, "now_ms": 10_000}
    assert _code(lambda: verify(header_key="key", body=good, **late)) == -1021  # type: ignore[arg-type]


def test_withdrawal_rules_in_binance_codes() -> None:
    acc = _account()
    base = {"coin": "USDC", "network": "ETH", "address": ETH_ADDR, "amount": "10"}
    assert _code(lambda: acc.withdraw({**base, "address": "0x" + "cd" * 20}, 0)) == -4035  # not whitelisted
    assert _code(lambda: acc.withdraw({**base, "address": "nope"}, 0)) == -4007
    assert _code(lambda: acc.withdraw({**base, "amount": "2"}, 0)) == -4022  # below the minimum
    assert _code(lambda: acc.withdraw({**base, "amount": "10.0000001"}, 0)) == -4021  # finer than the multiple
    assert _code(lambda: acc.withdraw({**base, "amount": "1000"}, 0)) == -4026  # more than the balance
    xlm = {"coin": "XLM", "network": "XLM", "address": XLM_ADDR, "amount": "5"}
    assert _code(lambda: acc.withdraw(xlm, 0)) == -4008  # memo required
    acc.network("USDC", "ETH").withdraw_enable = False
    assert _code(lambda: acc.withdraw(base, 0)) == -4019  # suspended
    assert acc.balances["USDC"] == Decimal(100)


def test_a_withdrawal_moves_through_its_statuses_and_a_failure_gives_the_money_back() -> None:
    acc = _account()
    w = acc.withdraw({"coin": "XLM", "network": "XLM", "address": XLM_ADDR, "addressTag": "123", "amount": "5",
                      "withdrawOrderId": "pf-1"}, 10.0)  # fmt: skip
    assert acc.balances["XLM"] == Decimal(95)
    again = acc.withdraw({"coin": "XLM", "network": "XLM", "address": XLM_ADDR, "addressTag": "123", "amount": "5",
                          "withdrawOrderId": "pf-1"}, 11.0)  # fmt: skip
    assert again.id != w.id  # no idempotency at the exchange: the same request twice is two withdrawals
    assert [h["id"] for h in acc.history({"withdrawOrderId": "pf-1"}, 12.0)] == [again.id, w.id]
    assert acc.history({}, 12.0)[0]["status"] == 4
    acc.settle(w.id, "failure", 13.0)
    acc.settle(again.id, "completed", 13.0)
    assert acc.balances["XLM"] == Decimal(95)
    with pytest.raises(ValueError, match="already"):
        acc.settle(w.id, "completed", 14.0)


def test_history_lags_when_told() -> None:
    acc = _account()
    acc.history_lag_s = 5
    acc.withdraw({"coin": "USDC", "network": "ETH", "address": ETH_ADDR, "amount": "10"}, 100.0)
    assert acc.history({}, 101.0) == []
    assert len(acc.history({}, 106.0)) == 1


def test_whitelist_setting_parses() -> None:
    assert whitelist("XLM|GABC|77,ETH|0x1") == (WhitelistEntry("XLM", "GABC", "77"), WhitelistEntry("ETH", "0x1"))


def test_a_completed_withdrawal_reversed_later_gives_its_amount_back_once() -> None:
    account = _account()
    w = account.withdraw({"coin": "USDC", "network": "ETH", "address": ETH_ADDR, "amount": "10"}, now=1.0)
    account.settle(w.id, "completed", 2.0)
    assert account.balances["USDC"] == Decimal(90)
    with pytest.raises(ValueError, match="a reversal is one of"):
        account.reverse(w.id, "completed", 3.0)
    account.reverse(w.id, "cancelled", 3.0)
    assert (account.withdrawals[w.id].status, account.balances["USDC"]) == (1, Decimal(100))
    with pytest.raises(ValueError, match="not completed"):
        account.reverse(w.id, "failure", 4.0)  # once: a reversed withdrawal is not completed any more
    assert account.balances["USDC"] == Decimal(100)
