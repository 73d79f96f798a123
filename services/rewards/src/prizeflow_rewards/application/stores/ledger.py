"""The ledger's stores: moving money (`Ledger`) and reading what it moved (`LedgerBook`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Balance, BatchResult, Transfer


class Ledger(Protocol):
    """Accounts are locked in one global order per transaction (ascending account id, never below one held):
    a use case declares every account it will touch before it moves money, a consumer poll all of the poll's.
    A transaction waits for accounts only in that order; `lock_unless_busy` takes some without waiting."""

    async def apply(self, transfers: Sequence[Transfer]) -> BatchResult:
        """Apply a linked batch in the transaction: all or nothing (raises `LedgerError`)."""
        ...

    async def declare(self, refs: Iterable[AccountRef]) -> None:
        """Lock every account the transaction will touch, once, in account-id order, until it ends."""
        ...

    async def lock(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        """`declare`, and the balances (check-then-apply without races)."""
        ...

    async def lock_unless_busy(
        self,
        refs: Iterable[AccountRef],
        *,
        unless_busy: Iterable[AccountRef],
        one_free_of: Sequence[Sequence[AccountRef]] = (),
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """`lock` of `refs` (waiting for them), then each account of `unless_busy` that no other transaction holds,
        without waiting for any: the balances of all taken (an account of `unless_busy` that does not exist yet is
        not created, and its balance is zero), and the busy accounts (held elsewhere: not taken, no balance).
        Then, of each group of `one_free_of` (interchangeable accounts: an asset's clearing shards), one account
        taken without waiting: the first in the group's order that exists and no other transaction holds, else the
        first that does not exist yet (created); its balance is among the balances. A group all of whose accounts
        are held elsewhere has none there. Called first in the transaction."""
        ...

    async def take_one_free(self, groups: Sequence[Sequence[AccountRef]]) -> dict[AccountRef, Balance]:
        """Of each group, one account taken without waiting, as `lock_unless_busy`'s `one_free_of` does; any time
        in the transaction (it never waits, so it closes no cycle)."""
        ...

    async def wait_free(self, refs: Iterable[AccountRef]) -> None:
        """Wait until no other transaction holds any of these accounts (the lock timeout bounds the wait, then the
        database's error is raised), holding none of them after: before `lock`, so that a stuck account is not
        waited for while the transaction holds others. Called before the transaction takes any."""
        ...

    async def balances(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]: ...

    async def resolved_by(self, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]: ...

    async def recorded(self, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Which of these transfers the ledger holds already, with their amounts (one read, whatever the count)."""
        ...


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """A transfer as the ledger keeps it."""

    seq: int
    id: uuid.UUID
    kind: str
    debit: AccountRef
    credit: AccountRef
    amount: int
    flags: int
    pending_id: uuid.UUID | None
    business_key: str
    correlation_id: str | None
    created_at: datetime

    @property
    def asset(self) -> str:
        return self.debit.asset


class LedgerBook(Protocol):
    """The ledger's read side, for operators: transfers by flow or account, which accounts exist."""

    async def transfers(
        self,
        *,
        correlation_id: str | None,
        account: tuple[AccountKind, str] | None,
        before_seq: int | None,
        limit: int,
    ) -> list[TransferRecord]:
        """Newest first; `account` (kind, owner) matches the account in any asset, on either side."""
        ...

    async def transfer(self, transfer_id: uuid.UUID) -> TransferRecord | None: ...

    async def existing(self, refs: Iterable[AccountRef]) -> set[uuid.UUID]:
        """The ids of those accounts that exist (a correction never creates one)."""
        ...


__all__ = ["Ledger", "LedgerBook", "TransferRecord"]
