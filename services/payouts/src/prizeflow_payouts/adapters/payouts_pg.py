"""`SqlPayoutRepository`: the `PayoutRepository` port on PostgreSQL, one transaction (session) per instance.

The payout lifecycle's statements (requests, claims, guarded changes, history, attempts, approvals, provider events,
the outbox), batched wherever a worker or consumer handles many payouts at once (one statement per step).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_payouts.adapters import tables
from prizeflow_payouts.adapters.payout_rows import INSERT_PAYOUTS, insert_columns, payout_from_row, payouts_from
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout, RequestRefusal
from prizeflow_runtime.db import driver_connection
from prizeflow_runtime.outbox import add_events

_CLAIM_SUBMIT = text(
    """
    WITH due AS (
        SELECT id, state AS previous_state FROM payouts
        WHERE (state = 'approved' AND available_at <= now())
           OR (state = 'failed' AND next_attempt_at <= now())
           OR (state = 'submitting' AND lease_until < now())
        ORDER BY coalesce(lease_until, next_attempt_at, available_at)
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE payouts p SET
        state = 'submitting',
        -- a stale lease is the same attempt resumed (outcome unknown), not a new one
        attempts = CASE WHEN due.previous_state = 'submitting' THEN p.attempts ELSE p.attempts + 1 END,
        sync_first = p.sync_first OR due.previous_state = 'submitting' OR p.attempts > 0,
        next_attempt_at = NULL,
        lease_owner = :owner,
        lease_token = gen_random_uuid(),
        lease_until = now() + make_interval(secs => :lease_s),
        updated_at = now()
    FROM due WHERE p.id = due.id
    RETURNING p.*, due.previous_state
    """
)

_CLAIM_SYNC = text(
    """
    WITH due AS (
        SELECT id FROM payouts
        WHERE state = 'submitted' AND next_sync_at <= now() AND provider_name = ANY(CAST(:providers AS text[]))
        ORDER BY next_sync_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE payouts p SET
        lease_owner = :owner,
        lease_token = gen_random_uuid(),
        lease_until = now() + make_interval(secs => :lease_s),
        next_sync_at = now() + make_interval(secs => :lease_s),
        updated_at = now()
    FROM due WHERE p.id = due.id
    RETURNING p.*
    """
)

# The earliest moment either claim finds something, each term the first row of its claim's partial index.
_NEXT_DUE_IN = text(
    """
    SELECT extract(epoch FROM least(
        (SELECT min(available_at) FROM payouts WHERE state = 'approved'),
        (SELECT min(next_attempt_at) FROM payouts WHERE state = 'failed' AND next_attempt_at IS NOT NULL),
        (SELECT min(lease_until) FROM payouts WHERE state = 'submitting'),
        (SELECT min(next_sync_at) FROM payouts
          WHERE state = 'submitted' AND provider_name = ANY(CAST(:providers AS text[])))
    ) - now())
    """
)

# History and attempts are appended by COPY, in order (no conflict to skip, nothing to return): the rows are sent as
# they are, where an INSERT over arrays had every element checked and encoded as an array's, then unnested.
_HISTORY_COLUMNS = ("payout_id", "from_state", "to_state", "at", "actor", "reason", "error_code", "attempt")
_ATTEMPT_COLUMNS = (
    "payout_id", "attempt", "kind", "worker", "started_at", "finished_at", "outcome", "error_code", "detail"
)  # fmt: skip

_APPLY = text(
    """
    UPDATE payouts p SET
        state = u.to_state,
        provider_ref = coalesce(u.provider_ref, p.provider_ref),
        tx_hash = coalesce(u.tx_hash, p.tx_hash),
        fee_asset = coalesce(u.fee_asset, p.fee_asset),
        fee_amount = coalesce(u.fee_amount, p.fee_amount),
        last_error_code = coalesce(u.error_code, p.last_error_code),
        last_error_detail = coalesce(u.error_detail, p.last_error_detail),
        next_attempt_at = u.next_attempt_at,
        next_sync_at = u.next_sync_at,
        sync_polls = u.sync_polls,
        sync_first = coalesce(u.sync_first, p.sync_first),
        available_at = coalesce(u.available_at, p.available_at),
        submitted_at = coalesce(p.submitted_at, u.submitted_at),
        paid_at = coalesce(p.paid_at, u.paid_at),
        finished_at = u.finished_at,
        max_attempts = coalesce(u.max_attempts, p.max_attempts),
        -- since the first error of unknown outcome; settled, answered or a known error: no longer in doubt
        outcome_unknown_since = CASE
            WHEN u.to_state IN ('paid', 'cancelled', 'rejected', 'returned') OR u.finished_at IS NOT NULL THEN NULL
            WHEN u.outcome_unknown THEN coalesce(p.outcome_unknown_since, CAST(:at AS timestamptz))
            WHEN NOT u.outcome_unknown THEN NULL
            ELSE p.outcome_unknown_since
        END,
        lease_owner = NULL, lease_token = NULL, lease_until = NULL,
        updated_at = now()
    FROM unnest(
        CAST(:ids AS text[]), CAST(:expected AS text[]), CAST(:tokens AS uuid[]), CAST(:to_states AS text[]),
        CAST(:provider_refs AS text[]), CAST(:tx_hashes AS text[]), CAST(:fee_assets AS text[]),
        CAST(:fee_amounts AS bigint[]), CAST(:error_codes AS text[]), CAST(:error_details AS text[]),
        CAST(:next_attempt_ats AS timestamptz[]), CAST(:next_sync_ats AS timestamptz[]), CAST(:sync_polls AS int[]),
        CAST(:sync_firsts AS boolean[]), CAST(:available_ats AS timestamptz[]), CAST(:submitted_ats AS timestamptz[]),
        CAST(:paid_ats AS timestamptz[]), CAST(:finished_ats AS timestamptz[]), CAST(:max_attempts AS int[]),
        CAST(:outcome_unknowns AS boolean[])
    ) AS u(id, expected, token, to_state, provider_ref, tx_hash, fee_asset, fee_amount, error_code, error_detail,
           next_attempt_at, next_sync_at, sync_polls, sync_first, available_at, submitted_at, paid_at, finished_at,
           max_attempts, outcome_unknown)
    WHERE p.id = u.id AND p.state = u.expected AND (u.token IS NULL OR p.lease_token = u.token)
    RETURNING p.id
    """
)


log = logging.getLogger(__name__)

# A stopping worker's unsent payouts (handed over at their creation): each lease ended if it is still the one it was
# given (driven by the ids, the token beside each).
_END_LEASES = text(
    """
    UPDATE payouts p SET lease_until = now(), updated_at = now()
    FROM unnest(CAST(:ids AS text[]), CAST(:tokens AS uuid[])) AS u(id, token)
    WHERE p.id = u.id AND p.lease_token = u.token AND p.state = 'submitting'
    RETURNING p.id
    """
)


# A fee is recorded once: only on a payout of this provider that has none yet (the first answer carrying it wins),
# with its history entry, in one statement.
_RECORD_FEES = text(
    """
    WITH recorded AS (
        UPDATE payouts p SET fee_asset = u.asset, fee_amount = u.amount
        FROM unnest(CAST(:ids AS text[]), CAST(:assets AS text[]), CAST(:amounts AS bigint[])) AS u(id, asset, amount)
        WHERE p.id = u.id AND p.provider_name = :provider AND p.fee_asset IS NULL AND p.fee_amount IS NULL
        RETURNING p.id, p.state, p.fee_asset, p.fee_amount
    ), noted AS (
        INSERT INTO payout_history (payout_id, from_state, to_state, at, actor, reason)
        SELECT id, state, state, :at, 'reconciliation',
            'fee ' || fee_amount || ' ' || fee_asset
            || ': the provider''s statement is its first answer that carries it (run ' || CAST(:run AS text) || ')'
        FROM recorded
    )
    SELECT count(*) FROM recorded
    """
)


class SqlPayoutRepository:
    """`PayoutRepository` in the transaction of `session` (the unit of work begins and commits it)."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, payouts: Sequence[Payout]) -> set[str]:
        """One statement over arrays (unnest): no per-row SQL to build, whatever the batch size."""
        if not payouts:
            return set()
        return set((await self.session.execute(INSERT_PAYOUTS, insert_columns(payouts))).scalars())

    async def find_existing(
        self, keys: Sequence[str], request_ids: Sequence[str], claim_ids: Sequence[str] = ()
    ) -> list[Payout]:
        rows = await self.session.execute(
            text(
                "SELECT * FROM payouts WHERE idempotency_key = ANY(CAST(:keys AS text[])) "
                "OR payout_request_id = ANY(CAST(:rids AS text[])) OR claim_id = ANY(CAST(:claims AS text[]))"
            ),
            {"keys": list(keys), "rids": list(request_ids), "claims": list(claim_ids)},
        )
        return payouts_from(rows)

    async def find_refusals(self, claim_ids: Sequence[str]) -> dict[str, RequestRefusal]:
        rows = await self.session.execute(
            text(
                "SELECT claim_id, payout_request_id, idempotency_key, request_hash, code, detail, correlation_id, "
                "refused_at FROM payout_request_refusals WHERE claim_id = ANY(CAST(:claims AS text[]))"
            ),
            {"claims": list(claim_ids)},
        )
        return {r["claim_id"]: RequestRefusal(**r) for r in rows.mappings()}

    async def insert_refusals(self, refusals: Sequence[RequestRefusal]) -> set[str]:
        if not refusals:
            return set()
        result = await self.session.execute(
            pg_insert(tables.refusals)
            .values([asdict(r) for r in refusals])
            .on_conflict_do_nothing()
            .returning(tables.refusals.c.claim_id)
        )
        return {r[0] for r in result}

    async def next_route_announcement(self, digest: str, at: datetime) -> int | None:
        """The row lock makes concurrent replicas agree."""
        session = self.session
        row = (await session.execute(text("SELECT sequence, digest FROM route_announcements FOR UPDATE"))).first()
        if row is not None and row.digest == digest:
            return None
        sequence = 1 if row is None else int(row.sequence) + 1
        await session.execute(
            text(
                "INSERT INTO route_announcements (id, sequence, digest, published_at) VALUES (true, :s, :d, :t) "
                "ON CONFLICT (id) DO UPDATE SET sequence = :s, digest = :d, published_at = :t"
            ),
            {"s": sequence, "d": digest, "t": at},
        )
        return sequence

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        await add_events(self.session, events)

    async def end_leases(self, leases: Sequence[tuple[str, uuid.UUID]]) -> int:
        if not leases:
            return 0
        result = await self.session.execute(
            _END_LEASES, {"ids": [i for i, _ in leases], "tokens": [t for _, t in leases]}
        )
        return len(result.all())

    def after_commit(self, callback: Callable[[], None]) -> None:
        def run(_session: object) -> None:
            # Inside SQLAlchemy's commit, once the transaction has committed: an error here would surface from
            # `commit()` as if the transaction had failed.
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed (the transaction is committed)")

        event.listen(self.session.sync_session, "after_commit", run, once=True)

    async def get(self, payout_id: str, *, for_update: bool = False) -> Payout | None:
        sql = (
            "SELECT * FROM payouts WHERE id = :id FOR UPDATE" if for_update else "SELECT * FROM payouts WHERE id = :id"
        )
        row = (await self.session.execute(text(sql), {"id": payout_id})).mappings().first()
        return payout_from_row(row) if row else None

    async def find_for_provider_event(
        self, provider_type: str, provider_ref: str | None, key: str | None
    ) -> Payout | None:
        row = (
            (
                await self.session.execute(
                    text(
                        "SELECT * FROM payouts WHERE provider_type = :ptype "
                        "AND ((CAST(:key AS text) IS NOT NULL AND idempotency_key = :key) "
                        "OR (CAST(:ref AS text) IS NOT NULL AND provider_ref = :ref)) "
                        "LIMIT 1 FOR UPDATE"
                    ),
                    {"key": key, "ref": provider_ref, "ptype": provider_type},
                )
            )
            .mappings()
            .first()
        )
        return payout_from_row(row) if row else None

    async def claim_for_submit(self, *, owner: str, limit: int, lease_s: float) -> list[Payout]:
        result = await self.session.execute(_CLAIM_SUBMIT, {"owner": owner, "limit": limit, "lease_s": lease_s})
        return payouts_from(result)

    async def claim_for_sync(self, *, owner: str, providers: Sequence[str], limit: int, lease_s: float) -> list[Payout]:
        result = await self.session.execute(
            _CLAIM_SYNC, {"owner": owner, "limit": limit, "lease_s": lease_s, "providers": list(providers)}
        )
        return payouts_from(result)

    async def next_due_in(self, *, providers: Sequence[str]) -> float | None:
        seconds = (await self.session.execute(_NEXT_DUE_IN, {"providers": list(providers)})).scalar_one()
        return None if seconds is None else float(seconds)

    async def apply(self, changes: Sequence[Change], *, at: datetime) -> list[Change]:
        if not changes:
            return []
        c = changes
        params = {
            "ids": [x.record.id for x in c],
            "expected": [x.expected.value for x in c],
            "tokens": [x.token for x in c],
            "to_states": [x.to.value for x in c],
            "provider_refs": [x.provider_ref for x in c],
            "tx_hashes": [x.tx_hash for x in c],
            "fee_assets": [x.fee.asset if x.fee else None for x in c],
            "fee_amounts": [x.fee.amount if x.fee else None for x in c],
            "error_codes": [x.error_code for x in c],
            "error_details": [x.error_detail for x in c],
            "next_attempt_ats": [x.next_attempt_at for x in c],
            "next_sync_ats": [x.next_sync_at for x in c],
            "sync_polls": [x.sync_polls for x in c],
            "sync_firsts": [x.sync_first for x in c],
            "available_ats": [x.available_at for x in c],
            "submitted_ats": [x.submitted_at for x in c],
            "paid_ats": [x.paid_at for x in c],
            "finished_ats": [x.finished_at for x in c],
            "max_attempts": [x.max_attempts for x in c],
            "outcome_unknowns": [x.outcome_unknown for x in c],
            "at": at,
        }
        applied_ids = set((await self.session.execute(_APPLY, params)).scalars())
        applied = [x for x in changes if x.record.id in applied_ids]
        await self.stage(applied, at=at)
        return applied

    async def stage(self, changes: Sequence[Change], *, at: datetime) -> None:
        await self.add_history([(x.record.id, h) for x in changes for h in x.history], at=at)
        logs = [
            (x.record.id, a.attempt, a.kind, a.worker, a.started_at, a.finished_at, a.outcome, a.error_code, a.detail)
            for x in changes
            if (a := x.attempt_log) is not None
        ]
        if logs:
            raw = await driver_connection(self.session)
            await raw.copy_records_to_table("payout_attempts", records=logs, columns=_ATTEMPT_COLUMNS)
        await add_events(self.session, [e for x in changes for e in x.events])

    async def add_history(self, entries: Sequence[tuple[str, HistoryEntry]], *, at: datetime) -> None:
        if not entries:
            return
        raw = await driver_connection(self.session)
        await raw.copy_records_to_table(
            "payout_history",
            records=[
                (i, None if h.from_state is None else h.from_state.value, h.to_state.value, at, h.actor, h.reason,
                 h.error_code, h.attempt)
                for i, h in entries
            ],
            columns=_HISTORY_COLUMNS,
        )  # fmt: skip

    async def approvers(self, payout_id: str) -> list[str]:
        rows = await self.session.execute(
            # Approvals count for the payout's current hold only: a hold that began after them needs its own.
            text(
                "SELECT a.approver_id FROM payout_approvals a JOIN payouts p ON p.id = a.payout_id "
                "WHERE a.payout_id = :id AND (p.held_at IS NULL OR a.decided_at >= p.held_at) ORDER BY a.decided_at"
            ),
            {"id": payout_id},
        )
        return [r[0] for r in rows]

    async def add_approval(
        self, payout_id: str, approver: str, *, reason: str | None, correlation_id: str, at: datetime
    ) -> bool:
        """The primary key says "already approved", not only the code."""
        result = await self.session.execute(
            pg_insert(tables.approvals)
            .values(
                payout_id=payout_id, approver_id=approver, decided_at=at, reason=reason, correlation_id=correlation_id
            )
            .on_conflict_do_nothing()
            .returning(tables.approvals.c.approver_id)
        )
        return result.first() is not None

    async def record_provider_event(
        self, provider: str, event_id: str, *, payout_id: str | None, status: str | None, outcome: str
    ) -> bool:
        result = await self.session.execute(
            text(
                "INSERT INTO provider_events (provider, provider_event_id, payout_id, status, outcome) "
                "VALUES (:p, :e, :id, :s, :o) ON CONFLICT DO NOTHING RETURNING provider_event_id"
            ),
            {"p": provider, "e": event_id, "id": payout_id, "s": status, "o": outcome},
        )
        return result.first() is not None

    async def payouts_for_update(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        found = await self.session.execute(
            text("SELECT * FROM payouts WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE"),
            {"ids": list(payout_ids)},
        )
        return {p.id: p for p in payouts_from(found)}

    async def record_statement_fees(
        self, provider: str, learned: Sequence[tuple[str, str, int]], *, run_id: str, at: datetime
    ) -> int:
        if not learned:
            return 0
        recorded = await self.session.execute(
            _RECORD_FEES,
            {
                "provider": provider,
                "at": at,
                "run": run_id,
                "ids": [payout_id for payout_id, _, _ in learned],
                "assets": [asset for _, asset, _ in learned],
                "amounts": [amount for _, _, amount in learned],
            },
        )
        return int(recorded.scalar_one())


__all__ = ["SqlPayoutRepository"]
