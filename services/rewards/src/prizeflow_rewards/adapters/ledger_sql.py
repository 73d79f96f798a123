"""The ledger's statements and what a batch computes around them (`SqlLedger`, `ledger_pg.py`): the locking read and
the ordered upsert that take a transaction's accounts, the batch's insert and its counters' update, and the
per-account deltas, balances and errors of a batch."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from prizeflow_rewards.domain.ledger import RESOLVING_BITS, Balance, LedgerError, Transfer, TransferFlags

# Taking accounts, in id order, FOR NO KEY UPDATE (foreign-key checks, FOR KEY SHARE, never wait for it).
# Through SQLAlchemy, not the raw driver: it may be the transaction's first statement, and SQLAlchemy begins
# the transaction on the connection lazily, with the first statement it runs itself.
#
# The accounts below the first one that does not exist yet (all of them, usually) are locked in id order by
# one plain locking read (LockRows above the Sort); the missing ids come back with the count, and the rest are
# taken by the upsert below, in id order too, so the whole set is still taken in one order.
LOCK_BELOW_FIRST_MISSING = text(
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
ACQUIRE = """
    INSERT INTO ledger_accounts AS a
        (id, kind, owner_id, asset, flags, debits_posted, credits_posted, debits_pending, credits_pending)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::bigint[],
                         $8::bigint[], $9::bigint[])
    ORDER BY 1
    ON CONFLICT (id) DO UPDATE SET flags = a.flags WHERE false
    RETURNING id, debits_posted, credits_posted, debits_pending, credits_pending, flags
"""
READ = text(
    "SELECT id, flags, debits_posted, credits_posted, debits_pending, credits_pending "
    "FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[]))"
)
# The hot statements run on the asyncpg connection itself (prepared once per connection, no SQLAlchemy
# compilation or row processing): their arrays go out and their rows come back in asyncpg's native types.
# They run inside the batch's savepoint, so SQLAlchemy has begun the transaction already.
#
# The batch's accounts are held already: this update applies the deltas and waits for nobody; the row's
# CHECK constraint is evaluated on the new values.
UPDATE = """
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
# batch is redone with `INSERT_OR_SKIP`, which reports which transfers were new.
INSERT_NEW = """
    INSERT INTO ledger_transfers
        (id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id, business_key, correlation_id)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[], $7::int[],
                         $8::uuid[], $9::text[], $10::text[])
"""
INSERT_OR_SKIP = (
    INSERT_NEW
    + """    ON CONFLICT DO NOTHING
    RETURNING id
"""
)
EXISTING = text(
    """
    SELECT id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id
    FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))
    """
)
# Accounts only some of a batch's requests need ($1), taken without waiting: part 0, taken; 1, held elsewhere (no
# counters); a missing one in neither. Part 2: the counters of the accounts the batch holds already ($2).
TAKE_UNLESS_BUSY = """
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
# Of each group of interchangeable accounts ($1: ids, $2: their group, $3: their rank in it), the first by rank
# that exists and no other transaction holds, taken without waiting (LIMIT 1 above the lock: one row locked per
# group); a group with none (all held elsewhere, or none created yet) returns no row.
TAKE_ONE_FREE = """
    SELECT g.g, t.id, t.debits_posted, t.credits_posted, t.debits_pending, t.credits_pending, t.flags
    FROM (SELECT DISTINCT g FROM unnest($2::int[]) AS x(g)) AS g
    CROSS JOIN LATERAL (
        SELECT a.id, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, a.flags
        FROM ledger_accounts a JOIN unnest($1::uuid[], $2::int[], $3::int[]) AS c(id, g, r) ON a.id = c.id
        WHERE c.g = g.g ORDER BY c.r LIMIT 1 FOR NO KEY UPDATE OF a SKIP LOCKED
    ) AS t
"""
EXISTING_ACCOUNTS = "SELECT id FROM ledger_accounts WHERE id = ANY($1::uuid[])"
WAIT_FREE = text(
    "SELECT count(*) FROM (SELECT 1 FROM ledger_accounts WHERE id = ANY(CAST(:ids AS uuid[])) "
    "ORDER BY id FOR NO KEY UPDATE) AS waited"
)
RESOLVED_BY = text("SELECT id FROM ledger_transfers WHERE pending_id = ANY(CAST(:ids AS uuid[]))")
RECORDED = text("SELECT id, amount FROM ledger_transfers WHERE id = ANY(CAST(:ids AS uuid[]))")


class NotAllNewError(Exception):
    """Some transfer of the batch is already there (a retry, or a second post/void of a pending one)."""


ID_INT = attrgetter("id.int")
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


def deltas_by_account(
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


async def move(
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
    rows = await raw.fetch(UPDATE, [ids[k] for k in keys], dp, cp, dpe, cpe)
    if len(rows) != len(keys):  # every account was held or created first: this cannot happen
        raise LedgerError("integrity_error", f"{len(keys) - len(rows)} accounts of the batch are missing")
    balances.update({r[0]: Balance(r[1], r[2], r[3], r[4], r[5]) for r in rows if r[0].int in debited})
    return balances


def balances_of(rows: Any) -> dict[uuid.UUID, Balance]:
    return {
        r.id: Balance(r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending, r.flags) for r in rows
    }


def dedup_in_batch(transfers: Sequence[Transfer]) -> list[Transfer]:
    if len(set(map(ID_INT, transfers))) == len(transfers) and not any(t.bits & RESOLVING_BITS for t in transfers):
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


def ledger_error(err: IntegrityError | asyncpg.IntegrityConstraintViolationError) -> LedgerError:
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


def sqlstate(err: DBAPIError) -> str | None:
    cause = getattr(getattr(err, "orig", None), "__cause__", None)
    value = getattr(cause, "sqlstate", None)
    return value if isinstance(value, str) else None


def transfer_columns(batch: Sequence[Transfer]) -> tuple[list[Any], ...]:
    """The batch as the insert's arrays (`INSERT_NEW`), column by column."""
    return (
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
