"""The ledger on PostgreSQL: a batch of transfers in a handful of statements, whatever its size.

`apply` runs inside the caller's transaction, in a SAVEPOINT, so a batch that cannot apply leaves nothing
behind and the caller may still record the refusal. Per batch:

1. (post/void only) read the pending transfers they resolve and check they match;
2. insert the transfers in one statement, sorted by id, ON CONFLICT DO NOTHING RETURNING id: a retried id
   is found already there (same body = no-op, different body = `transfer_conflict`), a second post/void of
   one pending transfer hits the partial unique index on `pending_id` (`pending_already_resolved`);
3. aggregate the per-account deltas of the new transfers in memory and apply them with ONE upsert, rows in
   account-id order, so every batch locks its accounts in the same global order (no deadlocks) and a
   missing account is created on the way. The row's CHECK constraint enforces
   `debits_must_not_exceed_credits` in the database; a violation aborts the whole batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.ledger import (
    RESOLVING_BITS,
    AccountKind,
    AccountRef,
    Balance,
    BatchResult,
    Delta,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferKind,
    deltas,
)

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
# The `locked` CTE takes the row locks in account-id order (LockRows runs above the Sort), so concurrent
# batches lock their common accounts in one global order: no deadlocks. The UPDATE then applies the deltas;
# the row's CHECK constraint is evaluated on the new values.
_UPDATE = text(
    """
    WITH d AS (
        SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:dp AS bigint[]), CAST(:cp AS bigint[]),
                             CAST(:dpe AS bigint[]), CAST(:cpe AS bigint[])) AS d(id, dp, cp, dpe, cpe)
    ), locked AS (
        SELECT id FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE
    )
    UPDATE ledger_accounts AS a SET
        debits_posted = a.debits_posted + d.dp,
        credits_posted = a.credits_posted + d.cp,
        debits_pending = a.debits_pending + d.dpe,
        credits_pending = a.credits_pending + d.cpe
    FROM d JOIN locked USING (id)
    WHERE a.id = d.id
    RETURNING a.id, a.flags, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending
    """
)
_INSERT = text(
    """
    INSERT INTO ledger_transfers
        (id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id, business_key)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:debits AS uuid[]), CAST(:credits AS uuid[]),
                         CAST(:assets AS text[]), CAST(:amounts AS bigint[]), CAST(:kinds AS text[]),
                         CAST(:flags AS int[]), CAST(:pendings AS uuid[]), CAST(:keys AS text[]))
    ON CONFLICT DO NOTHING
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
            async with conn.begin_nested():
                return await self._apply(conn, batch)
        except IntegrityError as err:
            raise _ledger_error(err) from err

    async def _apply(self, conn: Conn, batch: list[Transfer]) -> BatchResult:
        await self._check_pendings(conn, batch)
        batch.sort(key=lambda t: t.id)
        inserted = {
            row[0]
            for row in await conn.execute(
                _INSERT,
                {
                    "ids": [t.id for t in batch],
                    "debits": [t.debit.id for t in batch],
                    "credits": [t.credit.id for t in batch],
                    "assets": [t.asset for t in batch],
                    "amounts": [t.amount for t in batch],
                    "kinds": [t.kind.value for t in batch],
                    "flags": [t.bits for t in batch],
                    "pendings": [t.pending_id for t in batch],
                    "keys": [t.business_key for t in batch],
                },
            )
        }
        if len(inserted) == len(batch):
            applied, duplicates = batch, []
        else:
            applied = [t for t in batch if t.id in inserted]
            duplicates = [t for t in batch if t.id not in inserted]
            await self._check_duplicates(conn, duplicates)
        if not applied:
            return BatchResult(applied=(), duplicates=duplicates)
        changes = deltas(applied)
        balances = await self._update(conn, changes, {t.debit.id for t in applied})
        if len(balances) < len(changes):
            # First use of some accounts: create them (zero balances) and apply their deltas.
            refs = {r.id: r for t in applied for r in (t.debit, t.credit)}
            await create_accounts(conn, [refs[i] for i in sorted(changes) if i not in balances])
            rest = {i: d for i, d in changes.items() if i not in balances}
            balances.update(await self._update(conn, rest, set(rest)))
        return BatchResult(
            applied=applied, duplicates=duplicates, balances={i: b for i, b in balances.items() if b is not None}
        )

    async def _update(
        self, conn: Conn, changes: dict[uuid.UUID, Delta], report: set[uuid.UUID]
    ) -> dict[uuid.UUID, Balance | None]:
        """Apply deltas to existing accounts; returns every account updated (balances of `report` only)."""
        ids = sorted(changes)
        rows = await conn.execute(
            _UPDATE,
            {
                "ids": ids,
                "dp": [changes[i].debits_posted for i in ids],
                "cp": [changes[i].credits_posted for i in ids],
                "dpe": [changes[i].debits_pending for i in ids],
                "cpe": [changes[i].credits_pending for i in ids],
            },
        )
        return {
            r.id: Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending, r.flags)
            if r.id in report
            else None
            for r in rows
        }

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


def _balances(rows: Any) -> dict[uuid.UUID, Balance]:
    return {
        r.id: Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending, r.flags) for r in rows
    }


def _dedup_in_batch(transfers: Sequence[Transfer]) -> list[Transfer]:
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


def _ledger_error(err: IntegrityError) -> LedgerError:
    cause = getattr(err.orig, "__cause__", None)
    constraint = getattr(cause, "constraint_name", None) or str(err.orig)
    if "debits_must_not_exceed_credits" in constraint:
        # DETAIL: Failing row contains (<account id>, <kind>, <owner>, <asset>, ...).
        row = re.search(r"\(([0-9a-f-]{36}), ([a-z_]+), (.*?), ([A-Z]+),", getattr(cause, "detail", "") or "")
        where = f" on {row.group(2)} {row.group(3)} {row.group(4)}" if row else ""
        return LedgerError("exceeds_credits", f"the database refused: debits would exceed credits{where}")
    if "ledger_transfers_resolves_once" in constraint:
        return LedgerError("pending_already_resolved", "the pending transfer was already posted or voided")
    return LedgerError("integrity_error", str(err.orig))


def is_serialization_failure(err: BaseException) -> bool:
    """Deadlock or serialization failure: safe to retry the whole transaction."""
    sqlstate = getattr(getattr(getattr(err, "orig", None), "__cause__", None), "sqlstate", None)
    return isinstance(err, DBAPIError) and sqlstate in {"40001", "40P01"}


__all__ = [
    "AccountKind",
    "PgLedger",
    "TransferKind",
    "create_accounts",
    "is_serialization_failure",
]
