"""The rail's statement rules, without I/O: the exchange's withdrawal history (ccxt's `fetch_withdrawals`, Binance's
`GET /sapi/v1/capital/withdraw/history`) read as statement lines, and how a window is paged through it.

What a withdrawal becomes:
- completed (`ok`): a PAYOUT line of its gross (`amount` + `transactionFee`: what left our balance, what we asked
  for, the payout's amount) dated `completeTime` (when it left; `applyTime` if the exchange gives none), and, when
  `transactionFee` > 0, a FEE line of that fee, same date: the part of the gross the exchange kept (inside the
  PAYOUT amount, never on top of it);
- completed, then failed/cancelled (a `txId` shows it left, the status says it came back): the PAYOUT and FEE lines
  dated `applyTime` (the exchange's `completeTime` is now when it came back), and a REVERSAL line of the gross
  dated `completeTime`;
- anything else (in flight, or failed before it left: no `txId`): nothing moved, no line.

The history is listed by `applyTime`, newest first, in windows of at most 90 days, paged by offset/limit: what
completed or came back in a window is found by reading `lookback` before it (a withdrawal asked for earlier).
The cursor is `<window index>:<offset>`, windows counted from the newest: the same window and cursor give the same
rows as long as nothing is asked for inside the window meanwhile (a closed window).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from prizeflow_contracts.providers import StatementLine, StatementLineKind
from prizeflow_payouts.adapters.exchange.options import AssetRoute

MAX_WINDOW_MS: Final = 90 * 86_400_000  # Binance: startTime and endTime at most 90 days apart
UNKNOWN_SCALE: Final = 8  # a coin no route names (money left all the same): counted in 1e-8 of the coin
_LEFT_THEN_BACK: Final = frozenset({"failed", "canceled"})
K = StatementLineKind


@dataclass(frozen=True, slots=True)
class Cursor:
    window: int
    offset: int

    def encode(self) -> str:
        return f"{self.window}:{self.offset}"

    @classmethod
    def decode(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls(0, 0)
        window, sep, offset = raw.partition(":")
        if not sep or not window.isdigit() or not offset.isdigit():
            raise ValueError("not a cursor of this rail's statement")
        return cls(int(window), int(offset))


def windows(since: datetime, until: datetime, lookback_s: int) -> list[tuple[int, int]]:
    """The history's [startTime, endTime] windows (ms, both ends inclusive, newest first) covering
    [since - lookback, until)."""
    start = math.floor((since.timestamp() - lookback_s) * 1000)
    end = math.ceil(until.timestamp() * 1000) - 1
    out = []
    while end >= start:
        low = max(start, end - MAX_WINDOW_MS)
        out.append((low, end))
        end = low - 1
    return out


def lines_of(
    rows: Iterable[Mapping[str, Any]],
    *,
    since: datetime,
    until: datetime,
    routes: Mapping[str, AssetRoute],
    client_id_param: str | None,
) -> list[StatementLine]:
    """Statement lines of ccxt withdrawal structures, those dated in [since, until) only, in the rows' order."""
    out: list[StatementLine] = []
    for tx in rows:
        status = str(tx.get("status") or "")
        if status != "ok" and not (status in _LEFT_THEN_BACK and tx.get("txid")):
            continue
        wid = str(tx["id"])
        info = tx.get("info") or {}
        asset, scale = _asset(tx, routes)
        net = _minor(tx.get("amount"), scale)
        fee = _minor((tx.get("fee") or {}).get("cost"), scale) if tx.get("fee") else 0
        common: dict[str, Any] = {
            "asset": asset,
            "provider_ref": wid,
            "reference": (str(info.get(client_id_param) or "") or None) if client_id_param else None,
            "destination": tx.get("address") or tx.get("addressTo"),
        }
        applied = datetime.fromtimestamp(int(tx["timestamp"]) / 1000, UTC)
        left = (_completed(info) or applied) if status == "ok" else applied
        if since <= left < until:
            out.append(
                StatementLine(
                    line_id=wid, kind=K.PAYOUT, occurred_at=left, amount=net + fee, raw_type="withdrawal", **common
                )
            )
            if fee:
                out.append(
                    StatementLine(
                        line_id=f"{wid}:fee",
                        kind=K.FEE,
                        occurred_at=left,
                        amount=fee,
                        raw_type="transactionFee",
                        **common,
                    )
                )
        if status in _LEFT_THEN_BACK:
            back = _completed(info) or applied
            if since <= back < until:
                out.append(
                    StatementLine(
                        line_id=f"{wid}:reversal",
                        kind=K.REVERSAL,
                        occurred_at=back,
                        amount=net + fee,
                        raw_type=f"withdrawal {status} after completion",
                        **common,
                    )
                )
    return out


def _asset(tx: Mapping[str, Any], routes: Mapping[str, AssetRoute]) -> tuple[str, int]:
    currency, network = tx.get("currency"), tx.get("network")
    mine = [r for r in routes.values() if r.currency == currency]
    route = next((r for r in mine if r.network == network), mine[0] if len(mine) == 1 else None)
    if route is None:
        return str(currency or "?"), UNKNOWN_SCALE
    return route.asset, route.scale


def _minor(value: Any, scale: int) -> int:
    if value is None:
        return 0
    try:
        dec = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    return int(dec.scaleb(scale).to_integral_value(rounding=ROUND_HALF_EVEN))


def _completed(info: Mapping[str, Any]) -> datetime | None:
    raw = info.get("completeTime")
    if not raw:
        return None
    try:
        return datetime.strptime(str(raw), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


__all__ = ["MAX_WINDOW_MS", "UNKNOWN_SCALE", "Cursor", "lines_of", "windows"]
