"""In-memory ledger and its read sides (`FakeLedger`, `FakeLedgerBook`, `FakeWallets`), for the use cases' unit tests.

The fake ledger keeps the ledger's contract (idempotent transfer ids, pending → post/void once, all-or-nothing
batches, debits never above credits on the accounts that say so); it takes no locks (one test, one task) but
remembers what was declared. `tests/integration/test_store_contracts.py` holds it to `SqlLedger`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from prizeflow_rewards.application.ports import TransferRecord, WalletMovement
from prizeflow_rewards.domain.ledger import (
    RESOLVING_BITS,
    AccountKind,
    AccountRef,
    Balance,
    BatchResult,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    deltas,
)


class Shared:
    """A store other stores read through (the claims read the players' flags, the wallets read the ledger). The unit
    of work rolls each store back through its own attributes (`FakeUnitOfWork` copies `vars(store)`), so a copy of
    those made for another store keeps pointing at this very store."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self


class FakeLedger(Shared):
    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, AccountRef] = {}
        self.balance: dict[uuid.UUID, Balance] = {}
        self.transfers: dict[uuid.UUID, Transfer] = {}
        self.resolved: dict[uuid.UUID, uuid.UUID] = {}  # pending id → the post/void that resolved it
        self.declared: list[set[AccountRef]] = []
        self.busy: set[AccountRef] = set()  # held by another transaction (`lock_unless_busy` skips them)
        self.waited: list[set[AccountRef]] = []  # what `wait_free` waited for

    def _open(self, ref: AccountRef) -> Balance:
        self.accounts.setdefault(ref.id, ref)
        return self.balance.setdefault(ref.id, Balance(flags=int(ref.flags)))

    async def apply(self, transfers: Sequence[Transfer]) -> BatchResult:
        batch: dict[uuid.UUID, Transfer] = {}
        for t in transfers:
            if t.id in batch and batch[t.id].body() != t.body():
                raise LedgerError("transfer_conflict", f"{t.business_key}: twice in one batch with different bodies")
            batch[t.id] = t
        new: list[Transfer] = []
        duplicates: list[Transfer] = []
        resolving: set[uuid.UUID] = set()
        for t in batch.values():
            stored = self.transfers.get(t.id)
            if stored is not None:
                if stored.body() != t.body():
                    raise LedgerError("transfer_conflict", f"{t.business_key}: id {t.id} exists with a different body")
                duplicates.append(t)
                continue
            if t.bits & RESOLVING_BITS:
                assert t.pending_id is not None
                pending = self.transfers.get(t.pending_id)
                if pending is None:
                    raise LedgerError("pending_not_found", f"{t.business_key}: no pending transfer {t.pending_id}")
                if not pending.bits & TransferFlags.PENDING:
                    raise LedgerError("not_pending", f"{t.business_key}: transfer {t.pending_id} is not pending")
                if (pending.debit, pending.credit, pending.amount) != (t.debit, t.credit, t.amount):
                    raise LedgerError("pending_mismatch", f"{t.business_key}: accounts/amount differ from the pending")
                if t.pending_id in self.resolved or t.pending_id in resolving:
                    raise LedgerError("pending_already_resolved", "the pending transfer was already posted or voided")
                resolving.add(t.pending_id)
            new.append(t)
        after: dict[uuid.UUID, Balance] = {}
        for account_id, d in deltas(new).items():
            ref = next(r for t in new for r in (t.debit, t.credit) if r.id == account_id)
            b = self.balance.get(account_id, Balance(flags=int(ref.flags))).apply(d)
            if b.violates_flags():
                raise LedgerError("exceeds_credits", f"the database refused: debits would exceed credits on {ref}")
            after[account_id] = b
        new.sort(key=lambda t: t.id.int)  # written in id order, as `SqlLedger` inserts a batch
        for t in new:  # all or nothing: only once every account is known to accept the batch
            self._open(t.debit)
            self._open(t.credit)
            self.transfers[t.id] = t
            if t.pending_id is not None:
                self.resolved[t.pending_id] = t.id
        self.balance.update(after)
        debited = {t.debit.id for t in new}
        return BatchResult(
            applied=new,
            duplicates=duplicates,
            balances={i: replace(b) for i, b in after.items() if i in debited},
        )

    async def declare(self, refs: Iterable[AccountRef]) -> None:
        refs = set(refs)
        for r in refs:
            self._open(r)
        self.declared.append(refs)

    async def lock(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        refs = list(refs)
        await self.declare(refs)
        return {r: replace(self.balance[r.id]) for r in refs}

    async def lock_unless_busy(
        self,
        refs: Iterable[AccountRef],
        *,
        unless_busy: Iterable[AccountRef],
        one_free_of: Sequence[Sequence[AccountRef]] = (),
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """As the database does it; `busy` (accounts another transaction holds) is the test's to set."""
        balances = await self.lock(refs)
        busy: set[AccountRef] = set()
        for r in unless_busy:
            if r in self.busy:
                busy.add(r)
            elif r not in balances:
                known = self.balance.get(r.id)
                balances[r] = replace(known) if known is not None else Balance(flags=int(r.flags))
        balances |= await self.take_one_free(one_free_of)
        self.declared.append(set(balances))
        return balances, busy

    async def take_one_free(self, groups: Sequence[Sequence[AccountRef]]) -> dict[AccountRef, Balance]:
        balances = {}
        for group in groups:
            free = [r for r in group if r not in self.busy]
            existing = [r for r in free if r.id in self.balance]
            missing = [r for r in free if r.id not in self.balance]
            if chosen := (existing or missing)[:1]:
                balances[chosen[0]] = replace(self._open(chosen[0]))
        return balances

    async def wait_free(self, refs: Iterable[AccountRef]) -> None:
        self.waited.append(set(refs))
        self.busy -= set(refs)  # the other transaction ended meanwhile

    async def balances(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        return {r: replace(self.balance.get(r.id, Balance(flags=int(r.flags)))) for r in refs}

    async def resolved_by(self, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        return {self.resolved[p] for p in pending_ids if p in self.resolved}

    async def recorded(self, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        return {i: self.transfers[i].amount for i in transfer_ids if i in self.transfers}

    # What the tests read back.
    def of(self, ref: AccountRef) -> Balance:
        return replace(self.balance.get(ref.id, Balance(flags=int(ref.flags))))


class FakeLedgerBook:
    """Reads the fake ledger as `SqlLedgerBook` reads the ledger's tables."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger

    def _record(self, seq: int, t: Transfer) -> TransferRecord:
        return TransferRecord(
            seq, t.id, t.kind.value, t.debit, t.credit, t.amount, t.bits, t.pending_id, t.business_key,
            t.correlation_id, AT,
        )  # fmt: skip

    async def transfers(
        self,
        *,
        correlation_id: str | None,
        account: tuple[AccountKind, str] | None,
        before_seq: int | None,
        limit: int,
    ) -> list[TransferRecord]:
        found = [
            self._record(seq, t)
            for seq, t in enumerate(self.ledger.transfers.values(), start=1)
            if (correlation_id is None or t.correlation_id == correlation_id)
            and (account is None or account in {(t.debit.kind, t.debit.owner), (t.credit.kind, t.credit.owner)})
            and (before_seq is None or seq < before_seq)
        ]
        return found[::-1][:limit]

    async def transfer(self, transfer_id: uuid.UUID) -> TransferRecord | None:
        for seq, t in enumerate(self.ledger.transfers.values(), start=1):
            if t.id == transfer_id:
                return self._record(seq, t)
        return None

    async def existing(self, refs: Iterable[AccountRef]) -> set[uuid.UUID]:
        return {r.id for r in refs if r.id in self.ledger.accounts}


class FakeWallets:
    """Reads the fake ledger, as the PostgreSQL queries read the ledger's tables."""

    def __init__(self, ledger: FakeLedger) -> None:
        self.ledger = ledger

    async def balances(self, player_id: str) -> list[tuple[str, Balance]]:
        """The counters alone (the flags are the account's kind's), of the wallets any transfer moved."""
        out = []
        for ref in self.ledger.accounts.values():
            if ref.kind is AccountKind.PLAYER_WALLET and ref.owner == player_id:
                b = self.ledger.of(ref)
                counters = Balance(b.debits_posted, b.credits_posted, b.debits_pending, b.credits_pending)
                if counters != Balance():
                    out.append((ref.asset, counters))
        return sorted(out)

    async def wallet_ids(self, player_id: str, *, asset: str | None) -> list[uuid.UUID]:
        return [
            ref.id
            for ref in self.ledger.accounts.values()
            if ref.kind is AccountKind.PLAYER_WALLET and ref.owner == player_id and asset in (None, ref.asset)
        ]

    async def movements(
        self,
        wallet_ids: Sequence[uuid.UUID],
        *,
        kind: TransferKind | None,
        before_seq: int | None,
        limit: int,
    ) -> list[WalletMovement]:
        moved: list[WalletMovement] = []
        for seq, t in enumerate(self.ledger.transfers.values(), start=1):
            if t.debit.id not in wallet_ids and t.credit.id not in wallet_ids:
                continue
            if (kind is not None and t.kind is not kind) or (before_seq is not None and seq >= before_seq):
                continue
            incoming, pending = t.credit.id in wallet_ids, bool(t.bits & TransferFlags.PENDING)
            moved.append(
                WalletMovement(
                    seq, t.id, t.kind.value, t.asset, t.amount, incoming, pending, t.pending_id, t.business_key, AT
                )
            )
        return moved[::-1][:limit]


AT = datetime(2026, 1, 1, tzinfo=UTC)  # when the fakes say a transfer was made (the ledger keeps no clock)

__all__ = ["FakeLedger", "FakeLedgerBook", "FakeWallets", "Shared"]
