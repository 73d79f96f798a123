"""The top-ups' store: top-ups and their adjustments, bound to one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from prizeflow_rewards.domain.topups import Adjustment, TopUp, TopUpStatus


class TopUpRepository(Protocol):
    """Top-ups and their adjustments. Locks: top-up rows before ledger accounts, several at once in id order."""

    async def get(self, top_up_id: str, *, lock: bool = False) -> TopUp | None: ...

    async def lock_player(self, player_id: str) -> None:
        """Serialize this player's top-up creations until the transaction ends (the daily cap cannot race)."""
        ...

    async def open_or_credited_since(self, player_id: str, asset: str, *, since: datetime) -> int:
        """What the player's top-ups created after `since` add up to, among those credited or still payable."""
        ...

    async def add(self, top_up: TopUp) -> bool:
        """False: a top-up with this id exists (nothing written)."""
        ...

    async def lock_matching(
        self, *, top_up_ids: Sequence[str], session_refs: Sequence[str], payment_refs: Sequence[str]
    ) -> list[TopUp]:
        """The top-ups any of these names, locked in id order until the transaction ends."""
        ...

    async def find(self, *, top_up_id: str | None, session_ref: str | None, payment_ref: str | None) -> TopUp | None:
        """The top-up an event names: by our id, else the provider's session, else its payment."""
        ...

    async def set_status(self, top_up_id: str, status: TopUpStatus) -> None: ...

    async def mark_credited(
        self, top_up_id: str, *, payment_ref: str | None, transfer_id: uuid.UUID, at: datetime
    ) -> None:
        """The one credit of a top-up (the database refuses a second)."""
        ...

    async def adjustments(self, top_up_id: str) -> list[Adjustment]:
        """In arrival order."""
        ...

    async def record_adjustment(self, provider: str, adjustment: Adjustment, *, provider_event_id: str) -> None:
        """A new adjustment, pending (the database refuses a second one of the same provider, kind and ref)."""
        ...

    async def find_adjustment(self, provider: str, kind: str, adjustment_ref: str) -> Adjustment | None: ...

    async def mark_applied(self, adjustment: Adjustment) -> None:
        """The adjustment's split (`debited`, `receivable`, `credited`) and `applied_at`, once."""
        ...


__all__ = ["TopUpRepository"]
