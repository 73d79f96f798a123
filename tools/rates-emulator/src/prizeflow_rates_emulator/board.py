"""The rates board, without I/O: the market (every currency against USD, as Open Exchange Rates keeps it), the
publications the API serves, a schedule of future moves and staleness.

The API never answers the market directly: it answers the latest *publication* — a snapshot taken every
`interval_s` of the emulator's clock, stamped with its publication time (OXR's `timestamp`). Freezing the board stops
publishing (the provider went stale: the same snapshot, growing older); the market can still move underneath and is
published once unfrozen. Every rate is a `Decimal` with at most six places (what OXR publishes), never a float; a
cross rate (another `base`) is `market[symbol] / market[base]` rounded half-even to six places.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

PLACES: Final = Decimal("0.000001")
MAX_PLACES: Final = 6
CURRENCIES: Final[Mapping[str, str]] = {
    "USD": "United States Dollar",
    "INR": "Indian Rupee",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "AED": "United Arab Emirates Dirham",
    "SGD": "Singapore Dollar",
    "JPY": "Japanese Yen",
    "BRL": "Brazilian Real",
    "IDR": "Indonesian Rupiah",
    "PHP": "Philippine Peso",
    "NGN": "Nigerian Naira",
    "XLM": "Stellar",
}
DEFAULT_RATES: Final[Mapping[str, str]] = {
    "INR": "83.412500",
    "EUR": "0.921834",
    "GBP": "0.789123",
    "AED": "3.672950",
    "SGD": "1.345210",
    "JPY": "151.234000",
    "BRL": "5.012300",
    "IDR": "15812.5",
    "PHP": "56.123",
    "NGN": "1480.25",
    "XLM": "9.104511",
}


def parse_rate(value: Any, name: str = "rate") -> Decimal:
    """A rate as a decimal string or an integer (a float is refused: it may already be inexact), > 0, at most six
    places. ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f'{name} is a decimal string such as "83.412500" (not a float)')
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal number: {value!r}") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"{name} must be a positive number")
    if -rate.as_tuple().exponent > MAX_PLACES:  # type: ignore[operator]
        raise ValueError(f"{name} has more than {MAX_PLACES} decimal places")
    return rate


def parse_rates(doc: Any) -> dict[str, Decimal]:
    if not isinstance(doc, dict) or not doc:
        raise ValueError("rates is an object of currency code → decimal string")
    out = {}
    for code, value in doc.items():
        if code not in CURRENCIES:
            raise ValueError(f"{code!r} is not a known currency (one of {sorted(CURRENCIES)})")
        if code == "USD":
            raise ValueError("USD is the market's base: its rate is 1")
        out[code] = parse_rate(value, code)
    return out


def text(rate: Decimal) -> str:
    """The exact decimal as JSON writes a number: no exponent, no trailing zeros."""
    return format(rate.normalize(), "f")


@dataclass(frozen=True)
class Snapshot:
    timestamp: int  # when it was published (Unix seconds of the emulator's clock)
    rates: Mapping[str, Decimal]  # against USD

    def quote(self, base: str, symbols: tuple[str, ...] = ()) -> dict[str, Decimal]:
        """Every rate (or those of `symbols` that exist) against `base`: 1 `base` = rate `symbol`."""
        chosen = [s for s in (symbols or tuple(self.rates)) if s in self.rates]
        if base == "USD":
            return {s: self.rates[s].quantize(PLACES, ROUND_HALF_EVEN) for s in chosen}
        pivot = self.rates[base]
        return {s: (self.rates[s] / pivot).quantize(PLACES, ROUND_HALF_EVEN) for s in chosen}


@dataclass(frozen=True)
class Move:
    at: float  # when the market moves (the emulator's clock)
    rates: Mapping[str, Decimal]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "rates": {k: text(v) for k, v in self.rates.items()}}


class Board:
    def __init__(
        self,
        rates: Mapping[str, Decimal],
        *,
        interval_s: int,
        now: float,
        drift_bps: int = 0,
        rng: random.Random | None = None,
        history: int = 10_000,
    ) -> None:
        self.market: dict[str, Decimal] = {"USD": Decimal(1), **rates}
        self.interval_s = interval_s
        self.drift_bps = drift_bps
        self.rng = rng or random.Random()  # noqa: S311 - a market's random walk, not cryptography
        self.frozen = False
        self.schedule: list[Move] = []
        self.history: deque[Snapshot] = deque(maxlen=history)
        self.publish(self._slot(now))

    @property
    def latest(self) -> Snapshot:
        return self.history[-1]

    def _slot(self, now: float) -> int:
        return int(now) - int(now) % self.interval_s

    def publish(self, at: float) -> Snapshot:
        snapshot = Snapshot(int(at), dict(self.market))
        self.history.append(snapshot)
        return snapshot

    def tick(self, now: float) -> None:
        """Moves that came due, then a publication per interval passed (the last slot's; none while frozen)."""
        due = [m for m in self.schedule if m.at <= now]
        self.schedule = [m for m in self.schedule if m.at > now]
        for move in sorted(due, key=lambda m: m.at):
            self.market.update(move.rates)
        if not self.frozen and now >= self.latest.timestamp + self.interval_s:
            self._drift()
            self.publish(self._slot(now))

    def _drift(self) -> None:
        if not self.drift_bps:
            return
        for code in sorted(self.market):
            if code != "USD":
                step = self.rng.randint(-self.drift_bps, self.drift_bps)
                moved = self.market[code] * (10_000 + step) / 10_000
                self.market[code] = moved.quantize(PLACES, ROUND_HALF_EVEN)

    def set(self, rates: Mapping[str, Decimal], *, now: float, publish: bool = True) -> None:
        """The market moves now; published at once unless frozen (or `publish` is false)."""
        self.market.update(rates)
        if publish and not self.frozen:
            self.publish(now)

    def move(
        self, symbol: str, *, now: float, to: Decimal | None = None, by_bps: int | None = None, publish: bool = True
    ) -> Decimal:
        """One rate to `to`, or moved by `by_bps` basis points (rounded half-even to six places)."""
        if symbol not in self.market or symbol == "USD":
            raise ValueError(f"symbol must be one of {sorted(k for k in self.market if k != 'USD')}")
        if (to is None) == (by_bps is None):
            raise ValueError("give `to` or `by_bps`")
        if by_bps is not None:
            if by_bps <= -10_000:
                raise ValueError("by_bps must be above -10000 (a rate stays positive)")
            to = (self.market[symbol] * (10_000 + by_bps) / 10_000).quantize(PLACES, ROUND_HALF_EVEN)
        assert to is not None
        self.set({symbol: to}, now=now, publish=publish)
        return to

    def plan(self, after_s: float, rates: Mapping[str, Decimal], *, now: float) -> Move:
        move = Move(now + after_s, dict(rates))
        self.schedule.append(move)
        return move

    def freeze(self, frozen: bool, *, now: float) -> None:
        """Stop publishing (stale), or start again: publishing resumes at once with the market as it stands."""
        if self.frozen and not frozen:
            self.frozen = False
            self.publish(now)
        self.frozen = frozen

    def on(self, day: date) -> Snapshot | None:
        """The day's end-of-day rates: the last publication before the next midnight UTC; None before the first."""
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC).timestamp()
        found = [s for s in self.history if s.timestamp < end]
        return found[-1] if found else None

    def to_json(self) -> dict[str, Any]:
        return {
            "market": {k: text(v) for k, v in sorted(self.market.items())},
            "published": {
                "timestamp": self.latest.timestamp,
                "rates": {k: text(v) for k, v in sorted(self.latest.rates.items())},
            },
            "frozen": self.frozen,
            "interval_s": self.interval_s,
            "schedule": [m.to_json() for m in self.schedule],
        }


__all__ = [
    "CURRENCIES",
    "DEFAULT_RATES",
    "PLACES",
    "Board",
    "Move",
    "Snapshot",
    "parse_rate",
    "parse_rates",
    "text",
]
