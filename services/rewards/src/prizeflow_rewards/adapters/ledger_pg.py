"""The ledger on PostgreSQL: a batch of transfers in a handful of statements, whatever its size.

**Locks: one global order per transaction.** A transaction takes ledger accounts (row locks, FOR NO KEY UPDATE)
in ascending account id over its whole life, never one below an account it already holds, so no two ledger
transactions can wait on each other in a cycle: deadlock-free by construction, whatever they do between
statements. `SqlLedger` keeps each transaction's lock set: `declare` (or `lock`) takes every account a use case
or a whole consumer poll will touch, up front, in id order, creating missing ones; a later call may add
accounts only above every account held, else it raises `LockOrderError` (a caller bug, refused before it can
wait). With `strict=True` (the tests) any account not declared up front is refused: every path is proved to
declare all of them first.

The order is what a transaction *waits* in: `lock_unless_busy` (a claim batch) waits for the accounts all of the
batch needs, then takes those only some of it needs with SKIP LOCKED, in any order (a lock that never waits closes
no cycle); a busy one is reported instead of stalling the batch. `wait_free` waits for accounts holding none (in a
savepoint rolled back at once), so a stuck wallet is never waited for while a clearing account is held.

`SqlLedger` is bound to one session (`Books.ledger`). `apply` runs inside its transaction, in a SAVEPOINT, so a
batch that cannot apply leaves nothing behind and the caller may still record the refusal. Per batch:

1. (post/void only) read the pending transfers they resolve and check they match;
2. take the batch's accounts not held yet, in id order, inside the savepoint (a refused batch gives back what it
   took, and the lock set forgets it): those below the first missing one with one locking read, the others with
   an upsert that creates the missing ones where they fall in that order, the batch's deltas as their counters;
3. insert the transfers in one statement, sorted by id (as all new first; if some are not, the savepoint is
   rolled back and the batch redone with ON CONFLICT DO NOTHING RETURNING id): a retried id
   is found already there (same body = no-op, different body = `transfer_conflict`), a second post/void of
   one pending transfer hits the partial unique index on `pending_id` (`pending_already_resolved`); the
   database checks the transfers' accounts exist and share their asset (migration 0005);
4. apply the per-account deltas of the new transfers (aggregated in memory) to the accounts not just created
   with ONE update (the rows are held already: it waits for nobody). The row's CHECK constraint enforces
   `debits_must_not_exceed_credits` in the database; a violation aborts the whole batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

import asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.adapters.ledger_sql import (
    ACQUIRE,
    EXISTING,
    EXISTING_ACCOUNTS,
    ID_INT,
    INSERT_NEW,
    INSERT_OR_SKIP,
    LOCK_BELOW_FIRST_MISSING,
    READ,
    RECORDED,
    RESOLVED_BY,
    TAKE_ONE_FREE,
    TAKE_UNLESS_BUSY,
    WAIT_FREE,
    NotAllNewError,
    balances_of,
    dedup_in_batch,
    deltas_by_account,
    ledger_error,
    move,
    sqlstate,
    transfer_columns,
)
from prizeflow_rewards.domain.ledger import (
    RESOLVING_BITS,
    AccountRef,
    Balance,
    BatchResult,
    LedgerError,
    Transfer,
    TransferFlags,
)
from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection


class LockOrderError(RuntimeError):
    """A transaction asked for an account below one it already holds, without having declared it up front:
    taking it could deadlock, so nothing is locked. A bug in the caller (declare every account first)."""


@dataclass(slots=True)
class _Held:
    """The accounts one transaction holds, as `id.int` (the order PostgreSQL sorts uuids in)."""

    transaction: object
    ids: set[int] = field(default_factory=set)
    top: int = -1


_HELD: Final = "prizeflow_rewards.ledger_locks"


class SqlLedger:
    """Applies linked batches of transfers; every call is all-or-nothing. Balance rules are the database's:
    the batch's net effect per account is checked by the row's CHECK constraint. Account locks follow one
    global order per transaction (module docstring)."""

    def __init__(self, session: Conn, *, strict: bool = False) -> None:
        self.session = session
        self.strict = strict

    async def apply(self, transfers: Sequence[Transfer]) -> BatchResult:
        batch = dedup_in_batch(transfers)
        if not batch:
            return BatchResult()
        try:
            return await self._apply_in_savepoint(batch)
        except IntegrityError as err:
            raise ledger_error(err) from err
        except asyncpg.IntegrityConstraintViolationError as err:
            raise ledger_error(err) from err
        except (asyncpg.NumericValueOutOfRangeError, asyncpg.DataError, OverflowError) as err:
            # A counter (or a batch's total for one account) past int64: nothing applies, the caller refuses.
            raise LedgerError(
                "amount_out_of_range", "the transfer would take an account's counters past the int64 range"
            ) from err
        except DBAPIError as err:
            if sqlstate(err) == "22003":  # numeric_value_out_of_range, through SQLAlchemy
                raise LedgerError(
                    "amount_out_of_range", "the transfer would take an account's counters past the int64 range"
                ) from err
            raise

    async def _apply_in_savepoint(self, batch: list[Transfer]) -> BatchResult:
        """The batch's accounts not held yet are taken inside its savepoint: their locks and the counters'
        update are one subtransaction (PostgreSQL need not remember two lockers per row), and a batch that
        rolls back gives back exactly the accounts it took, so the lock set is restored with it."""
        held = await self._held()
        before = (set(held.ids), held.top)
        retry = False
        try:
            while True:
                try:
                    async with self.session.begin_nested():
                        return await self._apply(batch, held, retry=retry)
                except NotAllNewError:
                    retry = True
                    held.ids, held.top = set(before[0]), before[1]
        except BaseException:
            held.ids, held.top = before
            raise

    async def _apply(self, batch: list[Transfer], held: _Held, *, retry: bool) -> BatchResult:
        await self._check_pendings(batch)
        fresh = self._not_held([r for t in batch for r in (t.debit, t.credit)], held)
        batch.sort(key=ID_INT)
        raw = await driver_connection(self.session)
        columns = transfer_columns(batch)
        if not retry:  # as if every transfer is new: a retried one is the exception, redone below
            ids, changes, debited = deltas_by_account(batch)
            created = await self._take(fresh, held, changes)
            try:
                await raw.execute(INSERT_NEW, *columns)
            except asyncpg.UniqueViolationError as err:
                raise NotAllNewError from err
            balances = await move(raw, ids, changes, debited, created)
            return BatchResult(applied=batch, duplicates=[], balances=balances)
        await self._take(fresh, held)
        rows = await raw.fetch(INSERT_OR_SKIP, *columns)
        inserted = {r[0].int for r in rows}
        applied = [t for t in batch if t.id.int in inserted]
        duplicates = [t for t in batch if t.id.int not in inserted]
        if duplicates:
            await self._check_duplicates(duplicates)
        if not applied:
            return BatchResult(applied=(), duplicates=duplicates)
        ids, changes, debited = deltas_by_account(applied)
        balances = await move(raw, ids, changes, debited, {})
        return BatchResult(applied=applied, duplicates=duplicates, balances=balances)

    async def declare(self, refs: Iterable[AccountRef]) -> None:
        """Lock every account the transaction will touch (creating missing ones), in account-id order, until
        it ends. Called first with all of them, later ledger calls on these accounts wait for nobody."""
        held = await self._held()
        await self._take(self._not_held(refs, held), held)

    def _not_held(self, refs: Iterable[AccountRef], held: _Held) -> list[AccountRef]:
        """The accounts of `refs` the transaction does not hold yet, in id order. Refused (LockOrderError,
        nothing taken) if taking them would break the transaction's one order."""
        new = {r.id.int: r for r in refs if r.id.int not in held.ids}
        keys = sorted(new)
        if keys and held.ids and (self.strict or keys[0] < held.top):
            first = new[keys[0]]
            raise LockOrderError(
                f"{first.kind.value} {first.owner} {first.asset} was not declared in this transaction's first lock"
                + ("" if self.strict else " and sorts below an account it already holds")
            )
        return [new[k] for k in keys]

    async def _take(
        self, accounts: list[AccountRef], held: _Held, changes: dict[int, list[int]] | None = None
    ) -> dict[int, Balance]:
        """Lock `accounts` (in id order, none held yet) until the transaction ends: those below the first one
        missing with one plain locking read, the others (from it on) with the ordered upsert that creates the
        missing ones where they fall, with their `changes` as counters. Returns the accounts so created."""
        if not accounts:
            return {}
        row = (await self.session.execute(LOCK_BELOW_FIRST_MISSING, {"ids": [a.id for a in accounts]})).one()
        created: dict[int, Balance] = {}
        if row.missing:
            rest = accounts[row.locked :]  # accounts are never deleted: exactly those below it were locked
            if rest[0].id != row.missing[0]:
                raise LedgerError("integrity_error", "the accounts below the first missing one changed")
            missing = {m.int for m in row.missing}
            zero = [0, 0, 0, 0]
            start = [changes.get(a.id.int, zero) if changes and a.id.int in missing else zero for a in rest]
            raw = await driver_connection(self.session)
            rows = await raw.fetch(
                ACQUIRE,
                [a.id for a in rest],
                [a.kind.value for a in rest],
                [a.owner for a in rest],
                [a.asset for a in rest],
                [int(a.flags) for a in rest],
                *(list(col) for col in zip(*start, strict=True)),
            )
            created = {r[0].int: Balance(r[1], r[2], r[3], r[4], r[5]) for r in rows}
        self._hold(held, accounts)
        return created if changes else {}

    @staticmethod
    def _hold(held: _Held, accounts: list[AccountRef]) -> None:
        if accounts:
            held.ids.update(a.id.int for a in accounts)
            held.top = max(held.top, accounts[-1].id.int)

    async def _held(self) -> _Held:
        """This transaction's lock set, kept on the connection and replaced when a new transaction starts."""
        conn = self.session
        sync = (await conn.connection() if isinstance(conn, AsyncSession) else conn).sync_connection
        assert sync is not None
        transaction = sync.get_transaction()
        held = sync.info.get(_HELD)
        if not isinstance(held, _Held) or held.transaction is not transaction:
            held = sync.info[_HELD] = _Held(transaction)
        return held

    async def _check_pendings(self, batch: Sequence[Transfer]) -> None:
        resolving = [t for t in batch if t.bits & RESOLVING_BITS]
        if not resolving:
            return
        rows = {r.id: r for r in await self.session.execute(EXISTING, {"ids": [t.pending_id for t in resolving]})}
        for t in resolving:
            p = rows.get(t.pending_id)
            if p is None:
                raise LedgerError("pending_not_found", f"{t.business_key}: no pending transfer {t.pending_id}")
            if not p.flags & TransferFlags.PENDING:
                raise LedgerError("not_pending", f"{t.business_key}: transfer {t.pending_id} is not pending")
            if (p.debit_account_id, p.credit_account_id, p.amount) != (t.debit.id, t.credit.id, t.amount):
                raise LedgerError("pending_mismatch", f"{t.business_key}: accounts/amount differ from the pending")

    async def _check_duplicates(self, duplicates: Sequence[Transfer]) -> None:
        rows = {r.id: r for r in await self.session.execute(EXISTING, {"ids": [t.id for t in duplicates]})}
        for t in duplicates:
            row = rows.get(t.id)
            if row is None:
                # Not there under its own id: it collided on the pending_id index.
                raise LedgerError(
                    "pending_already_resolved",
                    f"{t.business_key}: pending transfer {t.pending_id} was already posted or voided",
                )
            stored = (
                row.debit_account_id,
                row.credit_account_id,
                row.asset,
                row.amount,
                row.kind,
                row.flags & ~int(TransferFlags.LINKED),
                row.pending_id,
            )
            if stored != t.body():
                raise LedgerError("transfer_conflict", f"{t.business_key}: id {t.id} exists with a different body")

    async def balances(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        refs = list(refs)
        rows = balances_of(await self.session.execute(READ, {"ids": [r.id for r in refs]}))
        return {r: rows.get(r.id, Balance(flags=r.flags)) for r in refs}

    async def lock(self, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        """`declare`, and the accounts' balances: a check-then-apply is then race-free."""
        refs = list(refs)
        await self.declare(refs)
        rows = balances_of(await self.session.execute(READ, {"ids": [r.id for r in refs]}))
        return {r: rows[r.id] for r in refs}

    async def lock_unless_busy(
        self,
        refs: Iterable[AccountRef],
        *,
        unless_busy: Iterable[AccountRef],
        one_free_of: Sequence[Sequence[AccountRef]] = (),
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """`declare(refs)`, then the accounts of `unless_busy` no other transaction holds, without waiting, with
        every balance in one statement: the balances of `refs` and of each of `unless_busy` taken or missing (not
        created: zero, not held), and the busy ones. Then one account of each group of `one_free_of`, taken without
        waiting (`_one_free_of`): the first in the group's order that no other transaction holds."""
        needed = list(refs)
        await self.declare(needed)
        held = await self._held()
        balances, busy = await self._unless_busy(needed, unless_busy, held)
        if one_free_of:
            balances |= await self._one_free_of(one_free_of, held)
        return balances, busy

    async def take_one_free(self, groups: Sequence[Sequence[AccountRef]]) -> dict[AccountRef, Balance]:
        return await self._one_free_of(groups, await self._held())

    async def _one_free_of(self, groups: Sequence[Sequence[AccountRef]], held: _Held) -> dict[AccountRef, Balance]:
        """Of each group, the first account in its order that exists and no other transaction holds (one statement
        for all groups, SKIP LOCKED: it never waits); for a group with none free, the first of its accounts that
        does not exist yet, created (nobody can hold a row that is not there: only another transaction creating
        it at the same moment is waited for, until it commits). A group whose accounts all exist and are held
        elsewhere gets none: its absence from the balances says so."""
        ids, group_of, rank = [], [], []
        by_id: dict[int, AccountRef] = {}
        for g, group in enumerate(groups):
            for r, ref in enumerate(group):
                if ref.id.int in held.ids:  # this transaction holds it already: it is free for this transaction
                    continue
                ids.append(ref.id)
                group_of.append(g)
                rank.append(r)
                by_id[ref.id.int] = ref
        raw = await driver_connection(self.session)
        rows = await raw.fetch(TAKE_ONE_FREE, ids, group_of, rank) if ids else []
        balances = {by_id[row[1].int]: Balance(row[2], row[3], row[4], row[5], row[6]) for row in rows}
        self._hold(held, sorted(balances, key=ID_INT))
        chosen = {row[0] for row in rows}
        open_groups = [g for g in range(len(groups)) if g not in chosen]
        for g in list(open_groups):
            mine = [ref for ref in groups[g] if ref.id.int in held.ids]
            if mine:  # held by this transaction before: that one
                balances |= await self.balances(mine[:1])
                open_groups.remove(g)
        if not open_groups:
            return balances
        candidates = [ref for g in open_groups for ref in groups[g]]
        existing = {row[0].int for row in await raw.fetch(EXISTING_ACCOUNTS, [r.id for r in candidates])}
        for g in open_groups:
            missing = [ref for ref in groups[g] if ref.id.int not in existing]
            if missing:
                await self._take([missing[0]], held)
                balances[missing[0]] = Balance(flags=int(missing[0].flags))
        return balances

    async def _unless_busy(
        self, needed: list[AccountRef], unless_busy: Iterable[AccountRef], held: _Held
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        wanted = {r.id.int: r for r in unless_busy if r not in needed}
        fresh = [r for k, r in sorted(wanted.items()) if k not in held.ids]
        known = {r.id.int: r for r in needed} | {k: r for k, r in wanted.items() if k in held.ids}
        balances: dict[AccountRef, Balance] = {}
        busy: set[AccountRef] = set()
        if fresh or known:
            raw = await driver_connection(self.session)
            rows = await raw.fetch(TAKE_UNLESS_BUSY, [r.id for r in fresh], [r.id for r in known.values()])
            taken: list[AccountRef] = []
            for row in rows:
                ref = known[row[0].int] if row[6] == 2 else wanted[row[0].int]
                if row[6] == 1:
                    busy.add(ref)
                    continue
                balances[ref] = Balance(row[1], row[2], row[3], row[4], row[5])
                if row[6] == 0:
                    taken.append(ref)
            self._hold(held, sorted(taken, key=ID_INT))
        for ref in [*needed, *wanted.values()]:
            if ref not in balances and ref not in busy:
                balances[ref] = Balance(flags=int(ref.flags))  # it does not exist: nothing to draw on
        return balances, busy

    async def wait_free(self, refs: Iterable[AccountRef]) -> None:
        """Wait (up to the lock timeout: then the database's error) until no other transaction holds any of `refs`,
        holding none of them after. Only before the transaction holds any account (it would wait holding one)."""
        ids = sorted({r.id for r in refs}, key=attrgetter("int"))
        if not ids:
            return
        held = await self._held()
        if held.ids:
            raise LockOrderError("wait_free waits for accounts, so it must come before the transaction holds any")
        savepoint = await self.session.begin_nested()
        try:
            await self.session.execute(WAIT_FREE, {"ids": ids})
        finally:
            await savepoint.rollback()

    async def resolved_by(self, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await self.session.execute(RESOLVED_BY, {"ids": list(pending_ids)})
        return {r[0] for r in rows}

    async def recorded(self, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Which of these transfers are in the ledger already, with their amounts: one read."""
        rows = await self.session.execute(RECORDED, {"ids": list(transfer_ids)})
        return {r[0]: r[1] for r in rows}


__all__ = ["LockOrderError", "SqlLedger"]
