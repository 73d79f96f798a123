"""The ledger on PostgreSQL: a batch of transfers in a handful of statements, whatever its size.

**Locks: one global order per transaction.** A transaction takes ledger accounts (row locks, FOR NO KEY UPDATE)
in ascending account id over its whole life, never one below an account it already holds, so no two ledger
transactions can wait on each other in a cycle: deadlock-free by construction, whatever they do between
statements. `PgLedger` keeps each transaction's lock set: `declare` (or `lock`) takes every account a use case
or a whole consumer poll will touch, up front, in id order, creating missing ones; a later call may add
accounts only above every account held, else it raises `LockOrderError` (a caller bug, refused before it can
wait). With `strict=True` (the tests) any account not declared up front is refused: every path is proved to
declare all of them first.

The order is what a transaction *waits* in: `lock_unless_busy` (a claim batch) waits for the accounts all of the
batch needs, then takes those only some of it needs with SKIP LOCKED, in any order (a lock that never waits closes
no cycle); a busy one is reported instead of stalling the batch. `wait_free` waits for accounts holding none (in a
savepoint rolled back at once), so a stuck wallet is never waited for while a clearing account is held.

`apply` runs inside the caller's transaction, in a SAVEPOINT, so a batch that cannot apply leaves nothing behind
and the caller may still record the refusal. Per batch:

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

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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
)
from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection

# Taking accounts, in id order, FOR NO KEY UPDATE (foreign-key checks, FOR KEY SHARE, never wait for it).
# Through SQLAlchemy, not the raw driver: it may be the transaction's first statement, and SQLAlchemy begins
# the transaction on the connection lazily, with the first statement it runs itself.
#
# The accounts below the first one that does not exist yet (all of them, usually) are locked in id order by
# one plain locking read (LockRows above the Sort); the missing ids come back with the count, and the rest are
# taken by the upsert below, in id order too, so the whole set is still taken in one order.
_LOCK_BELOW_FIRST_MISSING = text(
    """
    WITH missing AS MATERIALIZED (
        SELECT w.id FROM unnest(CAST(:ids AS uuid[])) AS w(id)
        WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = w.id)
    ), first_missing AS (
        SELECT id FROM missing ORDER BY id LIMIT 1
    )
    SELECT (SELECT array_agg(id ORDER BY id) FROM missing) AS missing, count(*) AS locked FROM (
        SELECT 1 FROM ledger_accounts
        WHERE id = ANY(CAST(:ids AS uuid[]))
          AND ((SELECT id FROM first_missing) IS NULL OR id < (SELECT id FROM first_missing))
        ORDER BY id FOR NO KEY UPDATE
    ) AS locked
    """
)
# From the first missing account on: each account in id order is locked, or created where it falls in that
# order (one another transaction is creating is waited for in that order too). `WHERE false` updates nothing
# but still locks the existing row. An account that was missing is created with the batch's deltas as its
# counters (its CHECK constraints apply to them); the others propose zeros (a proposed row is checked before
# its conflict is found) and are moved by the update. Only the created rows come back. On the asyncpg
# connection: the locking read before it began the transaction.
_ACQUIRE = """
    INSERT INTO ledger_accounts AS a
        (id, kind, owner_id, asset, flags, debits_posted, credits_posted, debits_pending, credits_pending)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[],
                         $8::bigint[], $9::bigint[])
    ORDER BY 1
    ON CONFLICT (id) DO UPDATE SET flags = a.flags WHERE false
    RETURNING id, debits_posted, credits_posted, debits_pending, credits_pending, flags
"""
_READ = text(
    "SELECT id, flags, debits_posted, credits_posted, debits_pending, credits_pending "
    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[]))"
)
# The hot statements run on the asyncpg connection itself (prepared once per connection, no SQLAlchemy
# compilation or row processing): their arrays go out and their rows come back in asyncpg's native types.
# They run inside the batch's savepoint, so SQLAlchemy has begun the transaction already.
#
# The batch's accounts are held already: this update applies the deltas and waits for nobody; the row's
# CHECK constraint is evaluated on the new values.
_UPDATE = """
    UPDATE ledger_accounts AS a SET
        debits_posted = a.debits_posted + d.dp,
        credits_posted = a.credits_posted + d.cp,
        debits_pending = a.debits_pending + d.dpe,
        credits_pending = a.credits_pending + d.cpe
    FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) AS d(id, dp, cp, dpe, cpe)
    -- the `= ANY` lets the planner fetch just the batch's accounts instead of hashing the whole table.
    WHERE a.id = d.id AND a.id = ANY($1::uuid[])
    RETURNING a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, a.flags
"""
# A batch is first inserted as all new (no speculative insertion: ON CONFLICT costs about half as much
# again); if any of its transfers is already there, the unique violation rolls the savepoint back and the
# batch is redone with `_INSERT_OR_SKIP`, which reports which transfers were new.
_INSERT_NEW = """
    INSERT INTO ledger_transfers
        (id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id, business_key, correlation_id)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::int[],
                         $8::uuid[], $9::text[], $10::text[])
"""
_INSERT_OR_SKIP = (
    _INSERT_NEW
    + """    ON CONFLICT DO NOTHING
    RETURNING id
"""
)
_EXISTING = text(
    """
    SELECT id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id
    FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))
    """
)
# Accounts only some of a batch's requests need ($1), taken without waiting: part 0, taken; 1, held elsewhere (no
# counters); a missing one in neither. Part 2: the counters of the accounts the batch holds already ($2).
_TAKE_UNLESS_BUSY = """
    WITH taken AS MATERIALIZED (
        SELECT id, debits_posted, credits_posted, debits_pending, credits_pending, flags FROM ledger_accounts
        WHERE id = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED
    )
    SELECT id, debits_posted, credits_posted, debits_pending, credits_pending, flags, 0 AS part FROM taken
    UNION ALL
    SELECT id, 0, 0, 0, 0, flags, 1 FROM ledger_accounts
    WHERE id = ANY($1::uuid[]) AND id NOT IN (SELECT id FROM taken)
    UNION ALL
    SELECT id, debits_posted, credits_posted, debits_pending, credits_pending, flags, 2 FROM ledger_accounts
    WHERE id = ANY($2::uuid[])
"""
_WAIT_FREE = text(
    "SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY id FOR NO KEY UPDATE) AS waited"
)
_RESOLVED_BY = text("SELECT id FROM ledger_transfers WHERE pending_id = ANY(CAST(:ids AS uuid[]))")
_RECORDED = text("SELECT id, amount FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))")


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


class PgLedger:
    """Applies linked batches of transfers; every call is all-or-nothing. Balance rules are the database's:
    the batch's net effect per account is checked by the row's CHECK constraint. Account locks follow one
    global order per transaction (module docstring)."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict

    async def apply(self, conn: Conn, transfers: Sequence[Transfer]) -> BatchResult:
        batch = _dedup_in_batch(transfers)
        if not batch:
            return BatchResult()
        try:
            return await self._apply_in_savepoint(conn, batch)
        except IntegrityError as err:
            raise _ledger_error(err) from err
        except asyncpg.IntegrityConstraintViolationError as err:
            raise _ledger_error(err) from err
        except (asyncpg.NumericValueOutOfRangeError, asyncpg.DataError, OverflowError) as err:
            # A counter (or a batch's total for one account) past int64: nothing applies, the caller refuses.
            raise LedgerError(
                "amount_out_of_range", "the transfer would take an account's counters past the int64 range"
            ) from err
        except DBAPIError as err:
            if _sqlstate(err) == "22003":  # numeric_value_out_of_range, through SQLAlchemy
                raise LedgerError(
                    "amount_out_of_range", "the transfer would take an account's counters past the int64 range"
                ) from err
            raise

    async def _apply_in_savepoint(self, conn: Conn, batch: list[Transfer]) -> BatchResult:
        """The batch's accounts not held yet are taken inside its savepoint: their locks and the counters'
        update are one subtransaction (PostgreSQL need not remember two lockers per row), and a batch that
        rolls back gives back exactly the accounts it took, so the lock set is restored with it."""
        held = await self._held(conn)
        before = (set(held.ids), held.top)
        retry = False
        try:
            while True:
                try:
                    async with conn.begin_nested():
                        return await self._apply(conn, batch, held, retry=retry)
                except _NotAllNewError:
                    retry = True
                    held.ids, held.top = set(before[0]), before[1]
        except BaseException:
            held.ids, held.top = before
            raise

    async def _apply(self, conn: Conn, batch: list[Transfer], held: _Held, *, retry: bool) -> BatchResult:
        await self._check_pendings(conn, batch)
        fresh = self._not_held([r for t in batch for r in (t.debit, t.credit)], held)
        batch.sort(key=_ID_INT)
        raw = await driver_connection(conn)
        columns = (
            list(map(_ID, batch)),
            list(map(_DEBIT_ID, batch)),
            list(map(_CREDIT_ID, batch)),
            list(map(_ASSET, batch)),
            list(map(_AMOUNT, batch)),
            list(map(_KIND, batch)),  # a StrEnum member is its value
            list(map(_BITS, batch)),
            list(map(_PENDING_ID, batch)),
            list(map(_KEY, batch)),
            list(map(_CORRELATION, batch)),
        )
        if not retry:  # as if every transfer is new: a retried one is the exception, redone below
            ids, changes, debited = _deltas(batch)
            created = await self._take(conn, fresh, held, changes)
            try:
                await raw.execute(_INSERT_NEW, *columns)
            except asyncpg.UniqueViolationError as err:
                raise _NotAllNewError from err
            balances = await _move(raw, ids, changes, debited, created)
            return BatchResult(applied=batch, duplicates=[], balances=balances)
        await self._take(conn, fresh, held)
        rows = await raw.fetch(_INSERT_OR_SKIP, *columns)
        inserted = {r[0].int for r in rows}
        applied = [t for t in batch if t.id.int in inserted]
        duplicates = [t for t in batch if t.id.int not in inserted]
        if duplicates:
            await self._check_duplicates(conn, duplicates)
        if not applied:
            return BatchResult(applied=(), duplicates=duplicates)
        ids, changes, debited = _deltas(applied)
        balances = await _move(raw, ids, changes, debited, {})
        return BatchResult(applied=applied, duplicates=duplicates, balances=balances)

    async def declare(self, conn: Conn, refs: Iterable[AccountRef]) -> None:
        """Lock every account the transaction will touch (creating missing ones), in account-id order, until
        it ends. Called first with all of them, later ledger calls on these accounts wait for nobody."""
        held = await self._held(conn)
        await self._take(conn, self._not_held(refs, held), held)

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
        self, conn: Conn, accounts: list[AccountRef], held: _Held, changes: dict[int, list[int]] | None = None
    ) -> dict[int, Balance]:
        """Lock `accounts` (in id order, none held yet) until the transaction ends: those below the first one
        missing with one plain locking read, the others (from it on) with the ordered upsert that creates the
        missing ones where they fall, with their `changes` as counters. Returns the accounts so created."""
        if not accounts:
            return {}
        row = (await conn.execute(_LOCK_BELOW_FIRST_MISSING, {"ids": [a.id for a in accounts]})).one()
        created: dict[int, Balance] = {}
        if row.missing:
            rest = accounts[row.locked :]  # accounts are never deleted: exactly those below it were locked
            if rest[0].id != row.missing[0]:
                raise LedgerError("integrity_error", "the accounts below the first missing one changed")
            missing = {m.int for m in row.missing}
            zero = [0, 0, 0, 0]
            start = [changes.get(a.id.int, zero) if changes and a.id.int in missing else zero for a in rest]
            raw = await driver_connection(conn)
            rows = await raw.fetch(
                _ACQUIRE,
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

    async def _held(self, conn: Conn) -> _Held:
        """This transaction's lock set, kept on the connection and replaced when a new transaction starts."""
        sync = (await conn.connection() if isinstance(conn, AsyncSession) else conn).sync_connection
        assert sync is not None
        transaction = sync.get_transaction()
        held = sync.info.get(_HELD)
        if not isinstance(held, _Held) or held.transaction is not transaction:
            held = sync.info[_HELD] = _Held(transaction)
        return held

    async def _check_pendings(self, conn: Conn, batch: Sequence[Transfer]) -> None:
        resolving = [t for t in batch if t.bits & RESOLVING_BITS]
        if not resolving:
            return
        rows = {r.id: r for r in await conn.execute(_EXISTING, {"ids": [t.pending_id for t in resolving]})}
        for t in resolving:
            p = rows.get(t.pending_id)
            if p is None:
                raise LedgerError("pending_not_found", f"{t.business_key}: no pending transfer {t.pending_id}")
            if not p.flags & TransferFlags.PENDING:
                raise LedgerError("not_pending", f"{t.business_key}: transfer {t.pending_id} is not pending")
            if (p.debit_account_id, p.credit_account_id, p.amount) != (t.debit.id, t.credit.id, t.amount):
                raise LedgerError("pending_mismatch", f"{t.business_key}: accounts/amount differ from the pending")

    async def _check_duplicates(self, conn: Conn, duplicates: Sequence[Transfer]) -> None:
        rows = {r.id: r for r in await conn.execute(_EXISTING, {"ids": [t.id for t in duplicates]})}
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

    async def balances(self, conn: Conn, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        refs = list(refs)
        rows = _balances(
            await conn.execute(
                text(
                    "SELECT id, flags, debits_posted, credits_posted, debits_pending, credits_pending "
                    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[]))"
                ),
                {"ids": [r.id for r in refs]},
            )
        )
        return {r: rows.get(r.id, Balance(flags=r.flags)) for r in refs}

    async def lock(self, conn: Conn, refs: Iterable[AccountRef]) -> dict[AccountRef, Balance]:
        """`declare`, and the accounts' balances: a check-then-apply is then race-free."""
        refs = list(refs)
        await self.declare(conn, refs)
        rows = _balances(await conn.execute(_READ, {"ids": [r.id for r in refs]}))
        return {r: rows[r.id] for r in refs}

    async def lock_unless_busy(
        self, conn: Conn, refs: Iterable[AccountRef], *, unless_busy: Iterable[AccountRef]
    ) -> tuple[dict[AccountRef, Balance], set[AccountRef]]:
        """`declare(refs)`, then the accounts of `unless_busy` no other transaction holds, without waiting, with
        every balance in one statement: the balances of `refs` and of each of `unless_busy` taken or missing (not
        created: zero, not held), and the busy ones."""
        needed = list(refs)
        await self.declare(conn, needed)
        held = await self._held(conn)
        wanted = {r.id.int: r for r in unless_busy if r not in needed}
        fresh = [r for k, r in sorted(wanted.items()) if k not in held.ids]
        known = {r.id.int: r for r in needed} | {k: r for k, r in wanted.items() if k in held.ids}
        balances: dict[AccountRef, Balance] = {}
        busy: set[AccountRef] = set()
        if fresh or known:
            raw = await driver_connection(conn)
            rows = await raw.fetch(_TAKE_UNLESS_BUSY, [r.id for r in fresh], [r.id for r in known.values()])
            taken: list[AccountRef] = []
            for row in rows:
                ref = known[row[0].int] if row[6] == 2 else wanted[row[0].int]
                if row[6] == 1:
                    busy.add(ref)
                    continue
                balances[ref] = Balance(row[1], row[2], row[3], row[4], row[5])
                if row[6] == 0:
                    taken.append(ref)
            self._hold(held, sorted(taken, key=_ID_INT))
        for ref in [*needed, *wanted.values()]:
            if ref not in balances and ref not in busy:
                balances[ref] = Balance(flags=int(ref.flags))  # it does not exist: nothing to draw on
        return balances, busy

    async def wait_free(self, conn: Conn, refs: Iterable[AccountRef]) -> None:
        """Wait (up to the lock timeout: then the database's error) until no other transaction holds any of `refs`,
        holding none of them after. Only before the transaction holds any account (it would wait holding one)."""
        ids = sorted({r.id for r in refs}, key=attrgetter("int"))
        if not ids:
            return
        held = await self._held(conn)
        if held.ids:
            raise LockOrderError("wait_free waits for accounts, so it must come before the transaction holds any")
        savepoint = await conn.begin_nested()
        try:
            await conn.execute(_WAIT_FREE, {"ids": ids})
        finally:
            await savepoint.rollback()

    async def resolved_by(self, conn: Conn, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await conn.execute(_RESOLVED_BY, {"ids": list(pending_ids)})
        return {r[0] for r in rows}

    async def recorded(self, conn: Conn, transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
        """Which of these transfers are in the ledger already, with their amounts: one read."""
        rows = await conn.execute(_RECORDED, {"ids": list(transfer_ids)})
        return {r[0]: r[1] for r in rows}


class _NotAllNewError(Exception):
    """Some transfer of the batch is already there (a retry, or a second post/void of a pending one)."""


_ID_INT = attrgetter("id.int")
_ID = attrgetter("id")
_DEBIT_ID = attrgetter("debit.id")
_CREDIT_ID = attrgetter("credit.id")
_ASSET = attrgetter("debit.asset")
_AMOUNT = attrgetter("amount")
_KIND = attrgetter("kind")
_BITS = attrgetter("bits")
_PENDING_ID = attrgetter("pending_id")
_KEY = attrgetter("business_key")
_CORRELATION = attrgetter("correlation_id")
_PENDING = int(TransferFlags.PENDING)
_POST = int(TransferFlags.POST_PENDING)
_VOID = int(TransferFlags.VOID_PENDING)


def _deltas(
    transfers: Sequence[Transfer],
) -> tuple[dict[int, uuid.UUID], dict[int, list[int]], set[int]]:
    """Per-account change of a batch (what `domain.ledger.deltas` computes), keyed by `id.int`: the ids,
    the changes [debits_posted, credits_posted, debits_pending, credits_pending] and the debited accounts."""
    ids: dict[int, uuid.UUID] = {}
    changes: dict[int, list[int]] = {}
    debited: set[int] = set()
    for t in transfers:
        did, cid = t.debit.id, t.credit.id
        dk, ck = did.int, cid.int
        d = changes.get(dk)
        if d is None:
            d = changes[dk] = [0, 0, 0, 0]
            ids[dk] = did
        c = changes.get(ck)
        if c is None:
            c = changes[ck] = [0, 0, 0, 0]
            ids[ck] = cid
        debited.add(dk)
        a, bits = t.amount, t.bits
        if bits & _PENDING:
            d[2] += a
            c[3] += a
        elif bits & _POST:
            d[2] -= a
            d[0] += a
            c[3] -= a
            c[1] += a
        elif bits & _VOID:
            d[2] -= a
            c[3] -= a
        else:
            d[0] += a
            c[1] += a
    return ids, changes, debited


async def _move(
    raw: Any,
    ids: dict[int, uuid.UUID],
    changes: dict[int, list[int]],
    debited: set[int],
    created: dict[int, Balance],
) -> dict[uuid.UUID, Balance]:
    """Apply the per-account deltas to the accounts (held already) but those just `created` with them as their
    counters, in id order; the balances of the debited accounts."""
    keys = sorted(k for k in changes if k not in created)
    balances = {ids[k]: b for k, b in created.items() if k in debited}
    if not keys:
        return balances
    dp, cp, dpe, cpe = (list(col) for col in zip(*(changes[k] for k in keys), strict=True))
    rows = await raw.fetch(_UPDATE, [ids[k] for k in keys], dp, cp, dpe, cpe)
    if len(rows) != len(keys):  # every account was held or created first: this cannot happen
        raise LedgerError("integrity_error", f"{len(keys) - len(rows)} accounts of the batch are missing")
    balances.update({r[0]: Balance(r[1], r[2], r[3], r[4], r[5]) for r in rows if r[0].int in debited})
    return balances


def _balances(rows: Any) -> dict[uuid.UUID, Balance]:
    return {
        r.id: Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending, r.flags) for r in rows
    }


def _dedup_in_batch(transfers: Sequence[Transfer]) -> list[Transfer]:
    if len(set(map(_ID_INT, transfers))) == len(transfers) and not any(t.bits & RESOLVING_BITS for t in transfers):
        return list(transfers)  # the common case: distinct ids, no post/void
    seen: dict[uuid.UUID, Transfer] = {}
    for t in transfers:
        prior = seen.get(t.id)
        if prior is None:
            seen[t.id] = t
        elif prior.body() != t.body():
            raise LedgerError("transfer_conflict", f"{t.business_key}: twice in one batch with different bodies")
    pendings = [t.pending_id for t in seen.values() if t.bits & RESOLVING_BITS]
    if len(set(pendings)) != len(pendings):
        raise LedgerError("pending_already_resolved", "one batch posts or voids the same pending transfer twice")
    return list(seen.values())


def _ledger_error(err: IntegrityError | asyncpg.IntegrityConstraintViolationError) -> LedgerError:
    """`err` from SQLAlchemy (asyncpg's error is its `orig.__cause__`) or from asyncpg itself."""
    cause = getattr(err.orig, "__cause__", None) if isinstance(err, IntegrityError) else err
    constraint = getattr(cause, "constraint_name", None) or str(getattr(err, "orig", err))
    if "debits_must_not_exceed_credits" in constraint:
        # DETAIL: Failing row contains (<account id>, <kind>, <owner>, <asset>, ...). The owner (a player id)
        # stays out: this text reaches DLQ headers and logs.
        row = re.search(r"\(([0-9a-f-]{36}), ([a-z_]+), (.*?), ([A-Z]+),", getattr(cause, "detail", "") or "")
        where = f" on a {row.group(2)} account in {row.group(4)}" if row else ""
        return LedgerError("exceeds_credits", f"the database refused: debits would exceed credits{where}")
    if "ledger_transfers_resolves_once" in constraint:
        return LedgerError("pending_already_resolved", "the pending transfer was already posted or voided")
    if "ledger_transfers_accounts_exist" in constraint:  # the database's own check (migration 0005)
        return LedgerError("unknown_account", str(getattr(err, "orig", err)))
    if "ledger_transfers_same_asset" in constraint:
        return LedgerError("asset_mismatch", str(getattr(err, "orig", err)))
    return LedgerError("integrity_error", str(getattr(err, "orig", err)))


def _sqlstate(err: DBAPIError) -> str | None:
    cause = getattr(getattr(err, "orig", None), "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else None


_RETRYABLE: Final = frozenset({"40001", "40P01"})


def is_serialization_failure(err: BaseException) -> bool:
    """Deadlock (40P01) or serialization failure (40001) anywhere in the chain (asyncpg's own error, or wrapped
    by SQLAlchemy or by a use case): the transaction was rolled back whole, and is safe to retry."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) in _RETRYABLE:
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's exception here
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


__all__ = [
    "AccountKind",
    "LockOrderError",
    "PgLedger",
    "TransferKind",
    "is_serialization_failure",
]
