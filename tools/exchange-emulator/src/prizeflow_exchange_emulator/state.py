"""The emulated account: coins and their networks (fees, limits, memo rules, suspension), balances, the withdrawal
whitelist and withdrawals with their statuses. Amounts are `Decimal`s, never floats.

Binance's withdrawal statuses: 0 email sent, 1 cancelled, 2 awaiting approval, 3 rejected, 4 processing,
5 failure, 6 completed. A withdrawal starts at 4 and moves to 6, 5, 3 or 1; a failed, rejected or cancelled one
gives the amount back to the balance. The exchange has no idempotency for withdrawals: the same request twice is
two withdrawals (`withdrawOrderId` is stored and searchable, never deduplicated). A completed one may still be
reversed by the exchange later (`reverse`, an admin lever).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from prizeflow_exchange_emulator.settings import WhitelistEntry


class ExchangeError(Exception):
    """An answer in Binance's error shape: `{"code": <negative int>, "msg": ...}` with an HTTP status."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


@dataclass
class Network:
    coin: str
    network: str
    name: str
    withdraw_fee: Decimal
    withdraw_min: Decimal
    withdraw_max: Decimal
    multiple: Decimal  # withdrawIntegerMultiple: the amount is a whole number of these
    address_regex: str
    memo_required: bool = False  # Binance's `sameAddress`: one deposit address, told apart by the memo
    memo_regex: str = ""
    withdraw_enable: bool = True
    is_default: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "coin": self.coin,
            "name": self.name,
            "withdrawIntegerMultiple": str(self.multiple),
            "isDefault": self.is_default,
            "depositEnable": True,
            "withdrawEnable": self.withdraw_enable,
            "depositDesc": "",
            "withdrawDesc": "" if self.withdraw_enable else "Wallet maintenance, withdrawal suspended",
            "specialTips": "",
            "resetAddressStatus": False,
            "addressRegex": self.address_regex,
            "memoRegex": self.memo_regex,
            "withdrawFee": str(self.withdraw_fee),
            "withdrawMin": str(self.withdraw_min),
            "withdrawMax": str(self.withdraw_max),
            "minConfirm": 12,
            "unLockConfirm": 0,
            "sameAddress": self.memo_required,
            "depositDust": "0",
        }


def default_networks() -> list[Network]:
    return [
        Network(
            "USDC", "ETH", "Ethereum (ERC20)", Decimal("1.5"), Decimal("3"), Decimal("1000000"), Decimal("0.000001"),
            r"^(0x)[0-9A-Fa-f]{40}$", is_default=True,
        ),
        Network(
            "USDC", "XLM", "Stellar Network", Decimal("0.5"), Decimal("1"), Decimal("1000000"), Decimal("0.0000001"),
            r"^G[A-Z2-7]{55}$", memo_required=True, memo_regex=r"^[0-9A-Za-z\-_]{1,28}$",
        ),
        Network(
            "XLM", "XLM", "Stellar Network", Decimal("0.01"), Decimal("1"), Decimal("10000000"), Decimal("0.0000001"),
            r"^G[A-Z2-7]{55}$", memo_required=True, memo_regex=r"^[0-9A-Za-z\-_]{1,28}$", is_default=True,
        ),
    ]  # fmt: skip


STATUS_NAMES = {0: "email_sent", 1: "cancelled", 2: "awaiting_approval", 3: "rejected", 4: "processing",
                5: "failure", 6: "completed"}  # fmt: skip
SETTLE_TO = {"completed": 6, "failure": 5, "rejected": 3, "cancelled": 1}
_GIVES_BACK = frozenset({1, 3, 5})
MAX_HISTORY_LIMIT = 1000  # rows per page of the withdrawal history
MAX_HISTORY_WINDOW_MS = 90 * 86_400_000  # the widest startTime..endTime the history accepts


@dataclass
class Withdrawal:
    id: str
    coin: str
    network: str
    address: str
    tag: str | None
    amount: Decimal  # what was asked; the fee comes out of it
    fee: Decimal
    withdraw_order_id: str | None
    created: float
    status: int = 4
    tx_id: str = ""
    completed: float | None = None
    hidden: bool = False  # gone from the history (an injected `missing`): as if the exchange never made it

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "amount": str(self.amount - self.fee),
            "transactionFee": str(self.fee),
            "coin": self.coin,
            "status": self.status,
            "address": self.address,
            "txId": self.tx_id,
            "applyTime": datetime.fromtimestamp(self.created, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "network": self.network,
            "transferType": 0,
            "info": "",
            "confirmNo": 12 if self.status == 6 else 0,
            "walletType": 0,
            "txKey": "",
        }
        if self.tag:
            out["addressTag"] = self.tag
        if self.withdraw_order_id:
            out["withdrawOrderId"] = self.withdraw_order_id
        if self.completed is not None:
            out["completeTime"] = datetime.fromtimestamp(self.completed, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return out


@dataclass
class Account:
    networks: list[Network] = field(default_factory=default_networks)
    balances: dict[str, Decimal] = field(default_factory=dict)
    whitelist: set[WhitelistEntry] = field(default_factory=set)
    whitelist_enabled: bool = True
    withdrawals: dict[str, Withdrawal] = field(default_factory=dict)
    history_lag_s: float = 0.0

    def network(self, coin: str, network: str | None) -> Network:
        ours = [n for n in self.networks if n.coin == coin]
        if not ours:
            raise ExchangeError(400, -4018, "We don't have this asset.")
        if network is None:
            chosen = next((n for n in ours if n.is_default), ours[0])
        else:
            found = [n for n in ours if n.network == network]
            if not found:
                raise ExchangeError(400, -4019, "Current asset is not open for withdrawal.")
            chosen = found[0]
        return chosen

    def coins(self) -> list[dict[str, Any]]:
        by_coin: dict[str, list[Network]] = {}
        for n in self.networks:
            by_coin.setdefault(n.coin, []).append(n)
        return [
            {
                "coin": coin,
                "depositAllEnable": True,
                "withdrawAllEnable": all(n.withdraw_enable for n in nets),
                "name": coin,
                "free": str(self.balances.get(coin, Decimal(0))),
                "locked": "0",
                "freeze": "0",
                "withdrawing": "0",
                "ipoing": "0",
                "ipoable": "0",
                "storage": "0",
                "isLegalMoney": False,
                "trading": True,
                "networkList": [n.to_json() for n in nets],
            }
            for coin, nets in by_coin.items()
        ]

    def withdraw(self, params: dict[str, str], now: float) -> Withdrawal:  # noqa: PLR0912 - Binance's checks in order
        coin = params.get("coin")
        address = params.get("address")
        raw_amount = params.get("amount")
        if not coin or not address or not raw_amount:
            missing = next(p for p in ("coin", "address", "amount") if not params.get(p))
            raise ExchangeError(
                400, -1102, f"Mandatory parameter '{missing}' was not sent, was empty/null, or malformed."
            )
        try:
            amount = Decimal(raw_amount)
        except InvalidOperation:
            raise ExchangeError(400, -1100, "Illegal characters found in parameter 'amount'.") from None
        if not amount.is_finite() or amount <= 0:
            raise ExchangeError(400, -1100, "Illegal characters found in parameter 'amount'.")
        net = self.network(coin, params.get("network"))
        if not net.withdraw_enable:
            raise ExchangeError(400, -4019, "Current asset is not open for withdrawal.")
        tag = params.get("addressTag") or None
        if not re.fullmatch(net.address_regex, address):
            raise ExchangeError(400, -4007, "Address validation is not passed.")
        if net.memo_required and (tag is None or not re.fullmatch(net.memo_regex, tag)):
            raise ExchangeError(400, -4008, "Address tag validation is not passed.")
        if not net.memo_required and tag is not None:
            raise ExchangeError(400, -4008, "Address tag validation is not passed.")
        if self.whitelist_enabled and WhitelistEntry(net.network, address, tag) not in self.whitelist:
            raise ExchangeError(400, -4035, "This address is not on the whitelist. Please join and try again.")
        if amount % net.multiple != 0:
            raise ExchangeError(400, -4021, f"Asset withdrawal must be an {coin} multiple of {net.multiple}.")
        if amount < net.withdraw_min:
            raise ExchangeError(400, -4022, f"Not less than the minimum pick-up quantity {net.withdraw_min}.")
        if amount <= net.withdraw_fee:
            raise ExchangeError(400, -4028, "The amount of withdrawal must be greater than the Commission.")
        if amount > net.withdraw_max:
            raise ExchangeError(400, -4023, "Within 24 hours, the withdrawal exceeds the maximum amount.")
        if self.balances.get(coin, Decimal(0)) < amount:
            raise ExchangeError(400, -4026, "You have insufficient balance.")
        self.balances[coin] -= amount
        w = Withdrawal(
            id=secrets.token_hex(16),
            coin=coin,
            network=net.network,
            address=address,
            tag=tag,
            amount=amount,
            fee=net.withdraw_fee,
            withdraw_order_id=params.get("withdrawOrderId") or None,
            created=now,
        )
        self.withdrawals[w.id] = w
        return w

    def history(self, params: dict[str, str], now: float) -> list[dict[str, Any]]:
        """Newest first, as Binance answers; filtered by coin, withdrawOrderId, status and a time range of
        `applyTime` (both ends inclusive, at most 90 days apart; the last 90 days when neither is given), then
        `offset` rows skipped and `limit` (<= 1000) given."""
        start, end = self._window(params, now)
        limit = _int_param(params, "limit", 1000)
        offset = _int_param(params, "offset", 0)
        if limit < 1 or offset < 0:
            raise ExchangeError(400, -1100, "Illegal characters found in a parameter.")
        shown = []
        for w in sorted(self.withdrawals.values(), key=lambda w: (w.created, w.id), reverse=True):
            if w.hidden or now - w.created < self.history_lag_s:
                continue
            if params.get("coin") and w.coin != params["coin"]:
                continue
            if params.get("withdrawOrderId") and w.withdraw_order_id != params["withdrawOrderId"]:
                continue
            if params.get("status") and str(w.status) != params["status"]:
                continue
            if not start <= w.created * 1000 <= end:
                continue
            shown.append(w.to_json())
        return shown[offset : offset + min(limit, MAX_HISTORY_LIMIT)]

    @staticmethod
    def _window(params: dict[str, str], now: float) -> tuple[int, int]:
        """Binance's rule: startTime and endTime at most 90 days apart; one alone spans 90 days from it; neither,
        the last 90 days."""
        start, end = _ms(params.get("startTime")), _ms(params.get("endTime"))
        if start is None and end is None:
            end = int(now * 1000)
        if start is None:
            assert end is not None
            start = end - MAX_HISTORY_WINDOW_MS
        if end is None:
            end = start + MAX_HISTORY_WINDOW_MS
        if end - start > MAX_HISTORY_WINDOW_MS:
            raise ExchangeError(400, -1127, "More than 2160 hours between startTime and endTime.")
        return start, end

    def settle(self, wid: str, outcome: str, now: float) -> Withdrawal:
        w = self.withdrawals.get(wid)
        if w is None:
            raise KeyError(wid)
        if outcome not in SETTLE_TO:
            raise ValueError(f"outcome must be one of {sorted(SETTLE_TO)}")
        if w.status != 4:
            raise ValueError(f"withdrawal {wid} is already {STATUS_NAMES[w.status]}")
        w.status = SETTLE_TO[outcome]
        w.completed = now
        if w.status == 6:
            w.tx_id = "0x" + secrets.token_hex(32)
        if w.status in _GIVES_BACK:
            self.balances[w.coin] = self.balances.get(w.coin, Decimal(0)) + w.amount
        return w

    def reverse(self, wid: str, outcome: str, now: float) -> Withdrawal:
        """A completed withdrawal the exchange later reports failed, rejected or cancelled (what only the exchange
        does: a transfer its chain reverted, a compliance reversal): its amount comes back to the balance."""
        w = self.withdrawals.get(wid)
        if w is None:
            raise KeyError(wid)
        if outcome == "completed" or outcome not in SETTLE_TO:
            raise ValueError(f"a reversal is one of {sorted(set(SETTLE_TO) - {'completed'})}")
        if w.status != 6:
            raise ValueError(f"withdrawal {wid} is {STATUS_NAMES[w.status]}, not completed")
        w.status, w.completed = SETTLE_TO[outcome], now
        self.balances[w.coin] = self.balances.get(w.coin, Decimal(0)) + w.amount
        return w

    def due(self, older_than: float) -> list[str]:
        return [w.id for w in self.withdrawals.values() if w.status == 4 and w.created <= older_than]


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ExchangeError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _ms(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ExchangeError(400, -1100, "Illegal characters found in a parameter.") from None


def now() -> float:
    return time.time()


__all__ = [
    "MAX_HISTORY_LIMIT",
    "MAX_HISTORY_WINDOW_MS",
    "SETTLE_TO",
    "STATUS_NAMES",
    "Account",
    "ExchangeError",
    "Network",
    "Withdrawal",
    "default_networks",
    "now",
]
