"""The FX desk's store: quotes offered to players, locked once by the claim that takes them, and the desk's daily
reconciliation (`domain/fx.py`, ADR 0015)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from prizeflow_rewards.domain.fx import Quote


@dataclass(frozen=True, slots=True)
class FxPosition:
    """One asset's FX account: its ledger balance (credits - debits, posted), what the desk's transfers add up to,
    and what the converted claims committed but not yet paid will move (source: +net, target: -target)."""

    asset: str
    ledger: int
    booked: int
    committed: int

    @property
    def difference(self) -> int:
        return self.ledger - self.booked


@dataclass(frozen=True, slots=True)
class FxReconciliation:
    day: date
    asset: str
    ledger: int
    booked: int
    difference: int
    checked_at: datetime


class FxQuotes(Protocol):
    async def add(self, quote: Quote) -> None: ...

    async def get(self, quote_id: str) -> Quote | None: ...

    async def lock_many(self, quote_ids: Iterable[str]) -> dict[str, Quote]:
        """The quotes, locked (`FOR UPDATE`, in id order), with one statement."""
        ...

    async def bind_many(self, locks: Sequence[tuple[str, str]], *, at: datetime) -> None:
        """(quote id, claim id): each quote locked by its claim, with one statement. The database refuses a quote
        locked by a second claim (`fx_quotes_locked_once`)."""
        ...

    async def positions(self) -> list[FxPosition]: ...

    async def record_reconciliation(self, day: date, positions: Sequence[FxPosition], *, at: datetime) -> None:
        """One row per (day, asset); a second run of the day replaces its figures."""
        ...

    async def reconciliations(self, *, limit: int) -> list[FxReconciliation]: ...


__all__ = ["FxPosition", "FxQuotes", "FxReconciliation"]
