"""Ports the use cases depend on; adapters implement them (PostgreSQL in production and tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.ledger import AccountRef, Balance, BatchResult, Transfer

Conn = AsyncSession | AsyncConnection


class Ledger(Protocol):
    """Accounts are locked in one global order per transaction (ascending account id, never below one held):
    a use case declares every account it will touch before it moves money, a consumer poll all of the poll's."""

    async def apply(self, conn: Conn, transfers: Sequence[Transfer]) -> BatchResult:
        """Apply a linked batch in the caller's transaction: all or nothing (raises `LedgerError`)."""
        ...

    async def declare(self, conn: Conn, refs: Iterable[AccountRef]) -> None:
        """Lock every account the transaction will touch, once, in account-id order, until it ends."""
        ...

    async def lock(self, conn: Conn, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        """`declare`, and the balances (check-then-apply without races)."""
        ...

    async def balances(self, conn: Conn, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]: ...

    async def resolved_by(self, conn: Conn, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...
