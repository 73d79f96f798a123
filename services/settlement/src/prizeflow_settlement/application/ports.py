"""Ports the use cases need; adapters implement them (SQL in production, in-memory fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
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
    """One transaction's view of the rounds: lock, change, save, stage events; all commit together."""

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

    async def save(self, rounds: Sequence[Round]) -> None: ...

    async def add_events(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None: ...


class RoundStoreFactory(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[RoundStore]: ...


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


__all__ = ["EntryKey", "RoundPage", "RoundQueries", "RoundStore", "RoundStoreFactory"]
