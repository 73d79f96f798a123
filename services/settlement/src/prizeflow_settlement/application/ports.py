"""Ports the use cases need; adapters implement them (SQL in production, in-memory fakes in unit tests).

The stores (`RoundStore`, `Outbox`) are bound to one transaction and reached through `Books`
(`application/books.py`); the read side (`RoundQueries`, `RoundTimelineQueries`) opens its own reads."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_contracts.events.settlement import RoundState
from prizeflow_settlement.domain.round import Round


@dataclass(frozen=True, slots=True)
class EntryKey:
    """Entries to load: by entry id, or by player (entry id None: "did this player enter?")."""

    round_id: str
    entry_id: str | None
    player_id: str


class RoundStore(Protocol):
    """One transaction's view of the rounds: lock, change, save; committed with the events staged beside them."""

    async def lock_rounds(
        self,
        round_ids: Collection[str],
        *,
        entry_keys: Sequence[EntryKey] = (),
        full_entries_for: Collection[str] = (),
    ) -> dict[str, Round]:
        """Rounds by id, locked for this transaction. Each knows the entries matching `entry_keys` (same
        entry id or same player) and, for `full_entries_for`, every entry."""
        ...

    async def save(self, rounds: Sequence[Round]) -> None:
        """Persist what each round changed (its `pending_*`), then clear it from the round."""
        ...


class Outbox(Protocol):
    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        """Stage events in the transaction, in order: published only if it commits."""
        ...


@dataclass(frozen=True, slots=True)
class RoundPage:
    items: list[dict[str, Any]]
    next_cursor: str | None


class RoundQueries(Protocol):
    """Read side for the admin API."""

    async def list_rounds(
        self,
        *,
        state: RoundState | None,
        competition_id: str | None,
        disputed: bool | None,
        after: str | None,
        limit: int,
    ) -> RoundPage: ...

    async def get_round(self, round_id: str) -> dict[str, Any] | None: ...

    async def count_by_state(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class TransitionTrail:
    from_state: str | None
    to_state: str
    reason: str | None
    actor: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class DisputeTrail:
    status: str
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class RoundTrail:
    """A round's milestones, for a flow's timeline (never who played or won)."""

    round_id: str
    state: str
    asset: str
    prize_source: str
    settled_at: datetime | None
    allocations: int
    allocated: int
    transitions: list[TransitionTrail]
    disputes: list[DisputeTrail]


class RoundTimelineQueries(Protocol):
    async def rounds_of(self, correlation_id: str, *, limit: int) -> list[RoundTrail]:
        """The rounds of one flow (a correlation id), with their transitions and disputes in order."""
        ...


__all__ = [
    "DisputeTrail",
    "EntryKey",
    "Outbox",
    "RoundPage",
    "RoundQueries",
    "RoundStore",
    "RoundTimelineQueries",
    "RoundTrail",
    "TransitionTrail",
]
