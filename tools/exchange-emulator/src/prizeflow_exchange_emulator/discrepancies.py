"""Discrepancies injected into the withdrawal history (`POST /_emulator/discrepancies`), each shown the way
Binance's `GET /sapi/v1/capital/withdraw/history` would show such an event:

| kind | what the history then shows |
|---|---|
| `unrequested` | a completed withdrawal nobody asked for: no `withdrawOrderId`, `transactionFee` 0 (one movement) |
| `missing` | the withdrawal is gone from the history (its amount back in the balance) |
| `amount` | the withdrawal's gross (`amount` + `transactionFee`) is `amount` (its fee kept) |
| `destination` | the withdrawal's `address` is `destination` |
| `duplicate` | a second completed withdrawal, same `withdrawOrderId`, amount, fee, address and tag (no idempotency) |
| `reversal` | the completed withdrawal turns `status` 5 (failure) with its `txId` kept and `completeTime` now; its
|             | gross back in the balance. Whole withdrawals only: the exchange never reverses part of one |
| `fee` | `transactionFee` grows by `amount` and `amount` shrinks by it: the exchange kept more of the same gross |

`reference` is a withdrawal's `withdrawOrderId` (the client id the rail sends) or its `id`. Amounts are integers
in the platform's minor units: `minor_scale` says each coin's scale (the platform counts USDC and XLM at 7).
The answer's `line_id` is the statement line the rail's adapter makes of it: the withdrawal's id for its payout,
`<id>:fee` for its fee, `<id>:reversal` for its reversal (`null` for `missing`).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any, Final

from prizeflow_exchange_emulator.state import Account, Withdrawal

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})
MINOR_SCALE: Final[Mapping[str, int]] = {"USDC": 7, "XLM": 7}
DEFAULT_SCALE: Final = 7
_COMPLETED: Final = 6
_GIVES_BACK: Final = frozenset({1, 3, 5})  # cancelled, rejected, failure: the amount is back already


class DiscrepancyError(ValueError):
    """A discrepancy that cannot be injected; `status` is the admin API's answer (400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def inject(account: Account, body: Mapping[str, Any], now: float) -> str | None:  # noqa: PLR0911, PLR0912 - a kind each
    """Apply one discrepancy to the account; the statement line id it made or changed (None for `missing`)."""
    kind = str(body.get("kind") or "")
    if kind not in KINDS:
        raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
    if kind == "unrequested":
        return _unrequested(account, body, now)
    w = _find(account, body.get("reference"))
    if kind == "missing":
        w.hidden = True
        if w.status not in _GIVES_BACK:
            account.balances[w.coin] = account.balances.get(w.coin, Decimal(0)) + w.amount
        return None
    if kind == "amount":
        gross = _decimal(body, w.coin)
        if gross <= w.fee:
            raise DiscrepancyError(400, "the amount must exceed the withdrawal's fee, which comes out of it")
        w.amount = gross
        return w.id
    if kind == "destination":
        destination = str(body.get("destination") or "")
        if not destination:
            raise DiscrepancyError(400, "a destination discrepancy needs `destination`")
        w.address = destination
        return w.id
    if kind == "duplicate":
        twin = replace(
            w,
            id=secrets.token_hex(16),
            created=now,
            status=_COMPLETED,
            tx_id="0x" + secrets.token_hex(32),
            completed=now,
        )
        account.withdrawals[twin.id] = twin
        account.balances[w.coin] = account.balances.get(w.coin, Decimal(0)) - w.amount
        return twin.id
    if kind == "reversal":
        if body.get("amount") is not None and _decimal(body, w.coin) != w.amount:
            raise DiscrepancyError(400, "the exchange reverses a whole withdrawal, never part of one")
        try:
            account.reverse(w.id, "failure", now)
        except ValueError as err:
            raise DiscrepancyError(400, str(err)) from None
        return f"{w.id}:reversal"
    fee = _decimal(body, w.coin)
    if fee <= 0 or fee >= w.amount - w.fee:
        raise DiscrepancyError(400, "a fee discrepancy needs a positive `amount` below the withdrawn amount")
    w.fee += fee
    return f"{w.id}:fee"


def _unrequested(account: Account, body: Mapping[str, Any], now: float) -> str:
    coin = str(body.get("asset") or "")
    destination = str(body.get("destination") or "")
    if not coin or not destination:
        raise DiscrepancyError(400, "an unrequested withdrawal needs `amount`, `asset` and `destination`")
    amount = _decimal(body, coin)
    network = account.network(coin, None)
    w = Withdrawal(
        id=secrets.token_hex(16),
        coin=coin,
        network=network.network,
        address=destination,
        tag=None,
        amount=amount,
        fee=Decimal(0),
        withdraw_order_id=None,
        created=now,
        status=_COMPLETED,
        tx_id="0x" + secrets.token_hex(32),
        completed=now,
    )
    account.withdrawals[w.id] = w
    account.balances[coin] = account.balances.get(coin, Decimal(0)) - amount
    return w.id


def _find(account: Account, reference: Any) -> Withdrawal:
    if not reference:
        raise DiscrepancyError(400, "this kind needs `reference`: a withdrawOrderId or a withdrawal id")
    ref = str(reference)
    found = [
        w
        for w in sorted(account.withdrawals.values(), key=lambda w: w.created)
        if not w.hidden and ref in (w.id, w.withdraw_order_id)
    ]
    if not found:
        raise DiscrepancyError(404, "no withdrawal has this withdrawOrderId or id")
    return found[0]


def _decimal(body: Mapping[str, Any], coin: str) -> Decimal:
    raw = body.get("amount")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise DiscrepancyError(400, "`amount` is a positive integer in minor units")
    value = Decimal(raw).scaleb(-MINOR_SCALE.get(coin, DEFAULT_SCALE))
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


__all__ = ["DEFAULT_SCALE", "KINDS", "MINOR_SCALE", "DiscrepancyError", "inject"]
