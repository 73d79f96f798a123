"""The ledger on PostgreSQL: a batch of transfers in a handful of statements, whatever its size.

`apply` runs inside the caller's transaction, in a SAVEPOINT, so a batch that cannot apply leaves nothing
behind and the caller may still record the refusal. Per batch:

1. (post/void only) read the pending transfers they resolve and check they match;
2. insert the transfers in one statement, sorted by id (as all new first; if some are not, the savepoint is
   rolled back and the batch redone with ON CONFLICT DO NOTHING RETURNING id): a retried id
   is found already there (same body = no-op, different body = `transfer_conflict`), a second post/void of
   one pending transfer hits the partial unique index on `pending_id` (`pending_already_resolved`);
3. aggregate the per-account deltas of the new transfers in memory and apply them with ONE upsert, rows in
   account-id order, so every batch locks its accounts in the same global order (no deadlocks); a missing
   account is then created with the batch's deltas as its counters. The row's CHECK constraint enforces
   `debits_must_not_exceed_credits` in the database; a violation aborts the whole batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

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

_LOCK = text(
    "SELECT id, flags, debits_posted, credits_posted, debits_pending, credits_pending "
    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE"
)
_CREATE_ACCOUNTS = text(
    """
    INSERT INTO ledger_accounts (id, kind, owner_id, asset, flags)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:kinds AS text[]), CAST(:owners AS text[]),
                         CAST(:assets AS text[]), CAST(:flags AS int[]))
    ORDER BY 1
    ON CONFLICT DO NOTHING
    """
)
# The two hot statements run on the asyncpg connection itself (prepared once per connection, no SQLAlchemy
# compilation or row processing): their arrays go out and their rows come back in asyncpg's native types.
#
# The `locked` CTE takes the row locks in account-id order (LockRows runs above the Sort), so concurrent
# batches lock their common accounts in one global order: no deadlocks. The UPDATE then applies the deltas;
# the row's CHECK constraint is evaluated on the new values. `rep` marks the accounts whose balances the
# caller wants back; every updated row still returns its id (so missing accounts are found).
_UPDATE = """
    WITH d AS (
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bool[])
            AS d(id, dp, cp, dpe, cpe, rep)
    ), locked AS (
        SELECT id FROM ledger_accounts WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
    )
    UPDATE ledger_accounts AS a SET
        debits_posted = a.debits_posted + d.dp,
        credits_posted = a.credits_posted + d.cp,
        debits_pending = a.debits_pending + d.dpe,
        credits_pending = a.credits_pending + d.cpe
    FROM d
    -- count(*) reads the whole `locked` CTE in a one-time filter, before the UPDATE touches any row; the
    -- `= ANY` lets the planner fetch just the batch's accounts instead of hashing the whole table.
    WHERE a.id = d.id AND a.id = ANY($1::uuid[]) AND (SELECT count(*) FROM locked) >= 0
    RETURNING a.id, d.rep, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, a.flags
"""
# A batch is first inserted as all new (no speculative insertion: ON CONFLICT costs about half as much
# again); if any of its transfers is already there, the unique violation rolls the savepoint back and the
# batch is redone with `_INSERT_OR_SKIP`, which reports which transfers were new.
_INSERT_NEW = """
    INSERT INTO ledger_transfers
        (id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id, business_key)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::int[],
                         $8::uuid[], $9::text[])
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
_RESOLVED_BY = text("SELECT id FROM ledger_transfers WHERE pending_id = ANY(CAST(:ids AS uuid[]))")


class PgLedger:
    """Applies linked batches of transfers; every call is all-or-nothing. Balance rules are the database's:
    the batch's net effect per account is checked by the row's CHECK constraint."""

    async def apply(self, conn: Conn, transfers: Sequence[Transfer]) -> BatchResult:
        batch = _dedup_in_batch(transfers)
        if not batch:
            return BatchResult()
        try:
            try:
                async with conn.begin_nested():
                    return await self._apply(conn, batch, retry=False)
            except _NotAllNewError:
                async with conn.begin_nested():
                    return await self._apply(conn, batch, retry=True)
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

    async def _apply(self, conn: Conn, batch: list[Transfer], *, retry: bool) -> BatchResult:
        await self._check_pendings(conn, batch)
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
        )
        if not retry:
            try:
                await raw.execute(_INSERT_NEW, *columns)
            except asyncpg.UniqueViolationError as err:
                raise _NotAllNewError from err
            rows: list[Any] | None = None  # all new
        else:
            rows = await raw.fetch(_INSERT_OR_SKIP, *columns)
        if rows is None or len(rows) == len(batch):
            applied, duplicates = batch, []
        else:
            inserted = {r[0].int for r in rows}
            applied = [t for t in batch if t.id.int in inserted]
            duplicates = [t for t in batch if t.id.int not in inserted]
            await self._check_duplicates(conn, duplicates)
        if not applied:
            return BatchResult(applied=(), duplicates=duplicates)
        ids, changes, debited = _deltas(applied)
        keys = sorted(changes)
        balances, done = await _update(raw, [ids[k] for k in keys], [changes[k] for k in keys], debited, keys)
        if len(done) < len(keys):
            # First use of some accounts: create them, their deltas as their counters.
            updated = {r[0].int for r in done}
            rest = [k for k in keys if k not in updated]
            refs = {r.id.int: r for t in applied for r in (t.debit, t.credit)}
            balances.update(await _create(raw, [refs[k] for k in rest], [changes[k] for k in rest]))
        return BatchResult(applied=applied, duplicates=duplicates, balances=balances)

    async def _lock(self, conn: Conn, refs: dict[uuid.UUID, AccountRef]) -> dict[uuid.UUID, Balance]:
        ids = sorted(refs)
        balances = _balances(await conn.execute(_LOCK, {"ids": ids}))
        missing = [refs[i] for i in ids if i not in balances]
        if missing:
            await create_accounts(conn, missing)
            balances = _balances(await conn.execute(_LOCK, {"ids": ids}))
        return balances

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
        """Lock accounts (creating them) until the transaction ends: a check-then-apply is then race-free."""
        refs = list(refs)
        balances = await self._lock(conn, {r.id: r for r in refs})
        return {r: balances[r.id] for r in refs}

    async def resolved_by(self, conn: Conn, pending_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        rows = await conn.execute(_RESOLVED_BY, {"ids": list(pending_ids)})
        return {r[0] for r in rows}


async def create_accounts(conn: Conn, refs: Sequence[AccountRef]) -> None:
    await conn.execute(
        _CREATE_ACCOUNTS,
        {
            "ids": [r.id for r in refs],
            "kinds": [r.kind.value for r in refs],
            "owners": [r.owner for r in refs],
            "assets": [r.asset for r in refs],
            "flags": [int(r.flags) for r in refs],
        },
    )


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


async def _update(
    raw: Any, ids: list[uuid.UUID], changes: list[list[int]], report: set[int] | None, keys: list[int]
) -> tuple[dict[uuid.UUID, Balance], list[Any]]:
    """Apply deltas (ids in id order) to the existing accounts: the balances of `report` (every account
    if None) and the rows of every account updated."""
    dp, cp, dpe, cpe = (list(col) for col in zip(*changes, strict=True))
    rep = [True] * len(keys) if report is None else [k in report for k in keys]
    rows = await raw.fetch(_UPDATE, ids, dp, cp, dpe, cpe, rep)
    return {r[0]: Balance(r[2], r[3], r[4], r[5], r[6]) for r in rows if r[1]}, rows


_CREATE_WITH_DELTAS = """
    INSERT INTO ledger_accounts
        (id, kind, owner_id, asset, flags, debits_posted, credits_posted, debits_pending, credits_pending)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[],
                         $8::bigint[], $9::bigint[])
    ORDER BY 1
    ON CONFLICT DO NOTHING
    RETURNING id, debits_posted, credits_posted, debits_pending, credits_pending, flags
"""


async def _create(raw: Any, refs: list[AccountRef], changes: list[list[int]]) -> dict[uuid.UUID, Balance]:
    """Create missing accounts (id order) with the batch's deltas as their counters (the CHECK constraints
    apply to the new row); an account created meanwhile by a concurrent batch gets them by an update."""
    dp, cp, dpe, cpe = (list(col) for col in zip(*changes, strict=True))
    rows = await raw.fetch(
        _CREATE_WITH_DELTAS,
        [r.id for r in refs],
        [r.kind for r in refs],
        [r.owner for r in refs],
        [r.asset for r in refs],
        [int(r.flags) for r in refs],
        dp,
        cp,
        dpe,
        cpe,
    )
    balances = {r[0]: Balance(r[1], r[2], r[3], r[4], r[5]) for r in rows}
    if len(rows) < len(refs):
        created = {r[0].int for r in rows}
        late = [i for i, r in enumerate(refs) if r.id.int not in created]
        more, _ = await _update(
            raw, [refs[i].id for i in late], [changes[i] for i in late], None, [refs[i].id.int for i in late]
        )
        balances.update(more)
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
    return LedgerError("integrity_error", str(getattr(err, "orig", err)))


def _sqlstate(err: DBAPIError) -> str | None:
    cause = getattr(getattr(err, "orig", None), "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else None


def is_serialization_failure(err: BaseException) -> bool:
    """Deadlock or serialization failure: safe to retry the whole transaction."""
    if isinstance(err, asyncpg.PostgresError):  # from the statements run on the asyncpg connection itself
        return err.sqlstate in {"40001", "40P01"}
    sqlstate = getattr(getattr(getattr(err, "orig", None), "__cause__", None), "sqlstate", None)
    return isinstance(err, DBAPIError) and sqlstate in {"40001", "40P01"}


__all__ = [
    "AccountKind",
    "PgLedger",
    "TransferKind",
    "create_accounts",
    "is_serialization_failure",
]
