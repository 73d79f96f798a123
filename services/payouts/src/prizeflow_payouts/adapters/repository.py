"""`SqlPayoutRepository`: the `PayoutRepository` port on PostgreSQL, one transaction (session) per instance.

Every statement the payouts use cases run, batched wherever a worker or consumer handles many payouts at once
(one statement per step, not one per payout), and the mapping between rows and the domain's `Payout`.
`SqlPayoutQueries` is the admin API's read side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.events.payouts import ApprovalPolicy
from prizeflow_contracts.providers import ProviderPayoutStatus, destination_key
from prizeflow_payouts.adapters import tables
from prizeflow_payouts.adapters.compliance_gate_pg import GateSql
from prizeflow_payouts.application.ports import (
    STUCK_KINDS,
    ListFilter,
    PayoutTrail,
    PayoutTransactions,
    RefusalTrail,
)
from prizeflow_payouts.domain.disagreement import Conclusion, Disagreement
from prizeflow_payouts.domain.payout import Change, HistoryEntry, Payout, RequestRefusal
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_runtime.outbox import add_events

T = TypeVar("T")

_PAYOUT_COLUMNS = (
    ("id", "text"), ("payout_request_id", "text"), ("idempotency_key", "text"), ("request_hash", "text"),
    ("claim_id", "text"), ("player_id", "text"), ("requested_by", "text"), ("asset", "text"), ("amount", "bigint"),
    ("destination_type", "text"), ("destination_address", "text"), ("destination_memo", "text"),
    ("provider_type", "text"), ("provider_name", "text"), ("state", "text"), ("approval_policy", "text"),
    ("correlation_id", "text"), ("cause_event_id", "text"), ("attempts", "int"), ("max_attempts", "int"),
    ("available_at", "timestamptz"), ("sync_first", "boolean"), ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"), ("hold_code", "text"), ("hold_detail", "text"), ("held_at", "timestamptz"),
    ("destination_key", "text"), ("hold_policy_version", "bigint"), ("hold_findings", "jsonb"),
)  # fmt: skip
_INSERT_PAYOUTS = text(
    f"INSERT INTO payouts ({', '.join(c for c, _ in _PAYOUT_COLUMNS)}) "  # noqa: S608 - fixed column list
    f"SELECT * FROM unnest({', '.join(f'CAST(:a_{c} AS {t}[])' for c, t in _PAYOUT_COLUMNS)}) "
    "ON CONFLICT DO NOTHING RETURNING id"
)

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

_INSERT_HISTORY = text(
    """
    INSERT INTO payout_history (payout_id, from_state, to_state, at, actor, reason, error_code, attempt)
    SELECT u.id, u.f, u.t, :at, u.actor, u.reason, u.code, u.attempt FROM unnest(
        CAST(:ids AS text[]), CAST(:froms AS text[]), CAST(:tos AS text[]), CAST(:actors AS text[]),
        CAST(:reasons AS text[]), CAST(:codes AS text[]), CAST(:attempts AS int[])
    ) AS u(id, f, t, actor, reason, code, attempt)
    """
)
_INSERT_ATTEMPTS = text(
    """
    INSERT INTO payout_attempts (payout_id, attempt, kind, worker, started_at, finished_at, outcome, error_code, detail)
    SELECT * FROM unnest(
        CAST(:ids AS text[]), CAST(:attempts AS int[]), CAST(:kinds AS text[]), CAST(:workers AS text[]),
        CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), CAST(:outcomes AS text[]),
        CAST(:codes AS text[]), CAST(:details AS text[])
    )
    """
)

_STUCK = text(
    """
    SELECT p.provider_name,
        count(*) FILTER (WHERE p.state = 'submitting' AND p.lease_until < now()) AS stale_leases,
        count(*) FILTER (WHERE p.state = 'submitted' AND p.submitted_at < now() - make_interval(secs => :s))
            AS unconfirmed,
        count(*) FILTER (WHERE p.outcome_unknown_since < now() - make_interval(
            secs => coalesce(t.after_s, CAST(:default_after AS float8)))) AS unknown_outcome
    FROM payouts p
    LEFT JOIN unnest(CAST(:names AS text[]), CAST(:afters AS float8[])) AS t(name, after_s)
        ON t.name = p.provider_name
    WHERE p.state IN ('submitting', 'submitted') OR p.outcome_unknown_since IS NOT NULL
    GROUP BY p.provider_name
    """
)

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


_ADD_DISAGREEMENT = text(
    """
    INSERT INTO payout_disagreements
        (payout_id, provider, payout_state, reported, source_ref, next_check_at, created_at)
    VALUES (:payout_id, :provider, :state, :reported, :ref, :at, :at)
    ON CONFLICT (payout_id) WHERE status IN ('checking', 'contradiction') DO NOTHING
    RETURNING id
    """
)
_CLAIM_DISAGREEMENTS = text(
    """
    WITH due AS (
        SELECT id FROM payout_disagreements
        WHERE status = 'checking' AND next_check_at <= now()
        ORDER BY next_check_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE payout_disagreements d SET checks = d.checks + 1, next_check_at = now() + make_interval(secs => :lease_s)
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.payout_id, d.provider, d.payout_state, d.reported, d.source_ref, d.checks, d.created_at
    """
)
_CONCLUDE_DISAGREEMENTS = text(
    """
    UPDATE payout_disagreements d SET
        status = u.status,
        provider_status_now = u.now_word,
        detail = u.detail,
        next_check_at = u.next_check_at,
        checked_at = CASE WHEN u.status = 'checking' THEN d.checked_at ELSE CAST(:at AS timestamptz) END
    FROM unnest(
        CAST(:ids AS bigint[]), CAST(:checks AS int[]), CAST(:statuses AS text[]), CAST(:now_words AS text[]),
        CAST(:details AS text[]), CAST(:next_check_ats AS timestamptz[])
    ) AS u(id, checks, status, now_word, detail, next_check_at)
    WHERE d.id = u.id AND d.status = 'checking' AND d.checks = u.checks
    RETURNING d.id
    """
)
_ACKNOWLEDGE = text(
    """
    UPDATE payout_disagreements SET status = 'acknowledged', acknowledged_by = :by, acknowledged_reason = :reason,
        acknowledged_at = :at
    WHERE id = :id AND status = 'contradiction'
    RETURNING id, payout_id, provider, payout_state, reported, provider_status_now
    """
)
DISAGREEMENT_COLUMNS = (
    "id, payout_id, provider, payout_state, reported, source_ref, status, provider_status_now, checks, "
    "next_check_at, detail, created_at, checked_at, acknowledged_by, acknowledged_reason, acknowledged_at"
)


def payout_from_row(row: Mapping[Any, Any]) -> Payout:
    """A `payouts` row (with `previous_state` when a claim returned it) as the domain's payout."""
    prev = row.get("previous_state")
    return Payout(
        id=row["id"],
        payout_request_id=row["payout_request_id"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        claim_id=row["claim_id"],
        player_id=row["player_id"],
        requested_by=row["requested_by"],
        asset=row["asset"],
        amount=int(row["amount"]),
        destination_type=row["destination_type"],
        destination_address=row["destination_address"],
        destination_memo=row["destination_memo"],
        provider_type=row["provider_type"],
        provider_name=row["provider_name"],
        state=PayoutState(row["state"]),
        approval_policy=ApprovalPolicy(row["approval_policy"]),
        correlation_id=row["correlation_id"],
        cause_event_id=row["cause_event_id"],
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        sync_first=bool(row["sync_first"]),
        sync_polls=int(row["sync_polls"]),
        provider_ref=row["provider_ref"],
        tx_hash=row["tx_hash"],
        last_error_code=row["last_error_code"],
        created_at=row["created_at"],
        submitted_at=row.get("submitted_at"),
        finished_at=row.get("finished_at"),
        lease_token=row.get("lease_token"),
        previous_state=PayoutState(prev) if prev else None,
        hold_code=row.get("hold_code"),
        hold_detail=row.get("hold_detail"),
        held_at=row.get("held_at"),
        hold_policy_version=row.get("hold_policy_version"),
        hold_findings=_findings(row.get("hold_findings")),
    )


def _findings(stored: Any) -> tuple[str, ...] | None:
    """`payouts.hold_findings` (jsonb: decoded by the driver, or its text where a statement reads it raw)."""
    if stored is None:
        return None
    return tuple(str(f) for f in (json.loads(stored) if isinstance(stored, str) else stored))


def _insert_columns(payouts: Sequence[Payout]) -> dict[str, list[Any]]:
    """The INSERT's arrays, one per column. A new payout is available, and last updated, when created."""
    cols: dict[str, list[Any]] = {f"a_{c}": [] for c, _ in _PAYOUT_COLUMNS}
    for p in payouts:
        for col, _ in _PAYOUT_COLUMNS:
            if col in {"available_at", "updated_at"}:
                value: Any = p.created_at
            elif col in {"state", "approval_policy"}:
                value = getattr(p, col).value
            elif col == "destination_key":
                value = destination_key(p.destination)
            elif col == "hold_findings":
                value = None if p.hold_findings is None else json.dumps(list(p.hold_findings))
            else:
                value = getattr(p, col)
            cols[f"a_{col}"].append(value)
    return cols


class SqlPayoutRepository(GateSql):
    """`PayoutRepository` in the transaction of `session` (the caller begins and commits it), and the compliance
    gate's `GateStore` (`GateSql`)."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_new(self, payouts: Sequence[Payout]) -> set[str]:
        """One statement over arrays (unnest): no per-row SQL to build, whatever the batch size."""
        if not payouts:
            return set()
        return set((await self.session.execute(_INSERT_PAYOUTS, _insert_columns(payouts))).scalars())

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
        return [payout_from_row(r) for r in rows.mappings()]

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
        return [payout_from_row(r) for r in result.mappings()]

    async def claim_for_sync(self, *, owner: str, providers: Sequence[str], limit: int, lease_s: float) -> list[Payout]:
        result = await self.session.execute(
            _CLAIM_SYNC, {"owner": owner, "limit": limit, "lease_s": lease_s, "providers": list(providers)}
        )
        return [payout_from_row(r) for r in result.mappings()]

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
        logs = [(x.record.id, a) for x in changes if (a := x.attempt_log) is not None]
        if logs:
            await self.session.execute(
                _INSERT_ATTEMPTS,
                {
                    "ids": [i for i, _ in logs],
                    "attempts": [a.attempt for _, a in logs],
                    "kinds": [a.kind for _, a in logs],
                    "workers": [a.worker for _, a in logs],
                    "starts": [a.started_at for _, a in logs],
                    "ends": [a.finished_at for _, a in logs],
                    "outcomes": [a.outcome for _, a in logs],
                    "codes": [a.error_code for _, a in logs],
                    "details": [a.detail for _, a in logs],
                },
            )
        await add_events(self.session, [e for x in changes for e in x.events])

    async def add_history(self, entries: Sequence[tuple[str, HistoryEntry]], *, at: datetime) -> None:
        if not entries:
            return
        await self.session.execute(
            _INSERT_HISTORY,
            {
                "ids": [i for i, _ in entries],
                "froms": [h.from_state.value if h.from_state else None for _, h in entries],
                "tos": [h.to_state.value for _, h in entries],
                "at": at,
                "actors": [h.actor for _, h in entries],
                "reasons": [h.reason for _, h in entries],
                "codes": [h.error_code for _, h in entries],
                "attempts": [h.attempt for _, h in entries],
            },
        )

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

    async def add_disagreement(
        self, payout: Payout, *, provider: str, reported: ProviderPayoutStatus, source_ref: str | None, at: datetime
    ) -> bool:
        """False: the payout already has an open one (checking, or waiting for a person)."""
        row = await self.session.execute(
            _ADD_DISAGREEMENT,
            {
                "payout_id": payout.id,
                "provider": provider,
                "state": payout.state.value,
                "reported": reported.value,
                "ref": source_ref,
                "at": at,
            },
        )
        return row.first() is not None

    async def claim_disagreements(self, *, limit: int, lease_s: float) -> list[Disagreement]:
        rows = (await self.session.execute(_CLAIM_DISAGREEMENTS, {"limit": limit, "lease_s": lease_s})).all()
        if not rows:
            return []
        found = await self.session.execute(
            text("SELECT * FROM payouts WHERE id = ANY(CAST(:ids AS text[]))"), {"ids": [r.payout_id for r in rows]}
        )
        payouts = {p.id: p for p in (payout_from_row(r) for r in found.mappings())}
        return [
            Disagreement(
                id=int(r.id),
                payout=payouts[r.payout_id],
                provider=r.provider,
                payout_state=PayoutState(r.payout_state),
                reported=ProviderPayoutStatus(r.reported),
                source_ref=r.source_ref,
                checks=int(r.checks),
                created_at=r.created_at,
            )
            for r in rows
        ]

    async def payouts_for_update(self, payout_ids: Sequence[str]) -> dict[str, Payout]:
        found = await self.session.execute(
            text("SELECT * FROM payouts WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE"),
            {"ids": list(payout_ids)},
        )
        return {p.id: p for p in (payout_from_row(r) for r in found.mappings())}

    async def conclude_disagreements(self, conclusions: Sequence[Conclusion], *, at: datetime) -> list[Conclusion]:
        """Written only for the check each was claimed for (`checks` is the fence); returns what was written."""
        if not conclusions:
            return []
        c = conclusions
        done = set(
            (
                await self.session.execute(
                    _CONCLUDE_DISAGREEMENTS,
                    {
                        "ids": [x.disagreement.id for x in c],
                        "checks": [x.disagreement.checks for x in c],
                        "statuses": [x.status.value for x in c],
                        "now_words": [x.provider_status_now for x in c],
                        "details": [x.detail[:1000] for x in c],
                        "next_check_ats": [x.next_check_at for x in c],
                        "at": at,
                    },
                )
            ).scalars()
        )
        return [x for x in conclusions if x.disagreement.id in done]

    async def acknowledge_disagreement(
        self, disagreement_id: int, *, by: str, reason: str, at: datetime
    ) -> dict[str, Any] | None:
        row = (
            (await self.session.execute(_ACKNOWLEDGE, {"id": disagreement_id, "by": by, "reason": reason, "at": at}))
            .mappings()
            .first()
        )
        return dict(row) if row else None

    async def open_contradictions(self) -> list[tuple[str, int]]:
        rows = await self.session.execute(
            text("SELECT provider, count(*) FROM payout_disagreements WHERE status = 'contradiction' GROUP BY provider")
        )
        return [(r[0], int(r[1])) for r in rows]

    async def counts(self) -> list[tuple[str, str, int]]:
        rows = await self.session.execute(
            text("SELECT state, provider_name, count(*) FROM payouts GROUP BY state, provider_name")
        )
        return [(r[0], r[1], int(r[2])) for r in rows]

    async def queue_length(self) -> int:
        value = await self.session.scalar(
            text(
                "SELECT count(*) FROM payouts WHERE (state = 'approved' AND available_at <= now()) "
                "OR (state = 'failed' AND next_attempt_at <= now())"
            )
        )
        return int(value or 0)

    async def stuck(
        self, *, submitted_older_s: float, operator_after_s: Mapping[str, float], default_operator_after_s: float
    ) -> list[tuple[str, str, int]]:
        """One statement over the rows in flight (the leases and submissions) and the few in doubt (partial index
        `payouts_outcome_unknown`), never the settled history."""
        rows = await self.session.execute(
            _STUCK,
            {
                "s": submitted_older_s,
                "names": list(operator_after_s),
                "afters": [float(v) for v in operator_after_s.values()],
                "default_after": float(default_operator_after_s),
            },
        )
        return [(kind, r.provider_name, int(getattr(r, kind))) for r in rows for kind in STUCK_KINDS]


def bound_transactions(
    sessions: async_sessionmaker[AsyncSession], bind: Callable[[AsyncSession], T]
) -> Callable[[], AbstractAsyncContextManager[T]]:
    """An opener of stores bound to one transaction: each block gets its own session and transaction, committed on
    exit, and `bind(session)` as its store."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[T]:
        async with sessions() as session, session.begin():
            yield bind(session)

    def opener() -> AbstractAsyncContextManager[T]:
        return transaction()

    return opener


def sql_transactions(sessions: async_sessionmaker[AsyncSession]) -> PayoutTransactions:
    """`PayoutTransactions` on a session factory."""
    return bound_transactions(sessions, SqlPayoutRepository)


# What a flow's timeline reads of its payouts; never an attempt's `detail` (a provider's own text).
_TRAIL_PARTS = (
    (
        "history",
        "SELECT payout_id, from_state, to_state, at, actor, reason, error_code, attempt FROM payout_history "
        "WHERE payout_id = ANY(CAST(:ids AS text[])) ORDER BY id",
    ),
    (
        "attempts",
        "SELECT payout_id, attempt, kind, finished_at, outcome, error_code FROM payout_attempts "
        "WHERE payout_id = ANY(CAST(:ids AS text[])) ORDER BY id",
    ),
    (
        "approvals",
        "SELECT payout_id, approver_id, decided_at FROM payout_approvals "
        "WHERE payout_id = ANY(CAST(:ids AS text[])) ORDER BY decided_at",
    ),
    (
        "provider_events",
        "SELECT payout_id, provider, status, outcome, received_at FROM provider_events "
        "WHERE payout_id = ANY(CAST(:ids AS text[])) ORDER BY received_at",
    ),
)


class SqlPayoutQueries:
    """`PayoutQueries`: the admin API's reads, each in its own short session."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def list_payouts(self, f: ListFilter) -> list[dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {"limit": f.limit, "offset": f.offset}
        for column, value in (
            ("state", f.state),
            ("provider_name", f.provider),
            ("asset", f.asset),
            ("player_id", f.player_id),
        ):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = value
        if f.older_than_s is not None:
            where.append("created_at <= now() - make_interval(secs => :older)")
            params["older"] = f.older_than_s
        if f.newer_than_s is not None:
            where.append("created_at >= now() - make_interval(secs => :newer)")
            params["newer"] = f.newer_than_s
        # Column names come from the fixed tuple above; every value is a bound parameter.
        sql = "SELECT * FROM payouts" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        sql += " ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset"
        async with self.sessions() as session:
            return [dict(r) for r in (await session.execute(text(sql), params)).mappings()]

    async def get_payout(self, payout_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            found = (
                (await session.execute(text("SELECT * FROM payouts WHERE id = :id"), {"id": payout_id}))
                .mappings()
                .first()
            )
            if found is None:
                return None
            row = dict(found)
            for key, sql in (
                (
                    "history",
                    "SELECT from_state, to_state, at, actor, reason, error_code, attempt FROM payout_history "
                    "WHERE payout_id = :id ORDER BY id",
                ),
                (
                    "attempts",
                    "SELECT attempt, kind, worker, started_at, finished_at, outcome, error_code, detail "
                    "FROM payout_attempts WHERE payout_id = :id ORDER BY id",
                ),
                (
                    "approvals",
                    "SELECT approver_id, decided_at, reason, correlation_id FROM payout_approvals "
                    "WHERE payout_id = :id ORDER BY decided_at",
                ),
            ):
                row[key] = [dict(r) for r in (await session.execute(text(sql), {"id": payout_id})).mappings()]
        return row

    async def payouts_of(self, correlation_id: str, *, limit: int) -> list[PayoutTrail]:
        """`PayoutTimelineQueries`: a flow's payouts and what happened to each (five reads, whatever their number)."""
        async with self.sessions() as session:
            found = (
                await session.execute(
                    text(
                        "SELECT id, claim_id, asset, amount, provider_name, destination_type, created_at FROM payouts "
                        "WHERE correlation_id = :cid ORDER BY created_at, id LIMIT :limit"
                    ),
                    {"cid": correlation_id, "limit": limit},
                )
            ).all()
            ids = [r.id for r in found]
            if not ids:
                return []
            parts: dict[str, dict[str, list[dict[str, Any]]]] = {
                i: {"history": [], "attempts": [], "approvals": [], "provider_events": []} for i in ids
            }
            for key, sql in _TRAIL_PARTS:
                for r in (await session.execute(text(sql), {"ids": ids})).mappings():
                    row = dict(r)
                    parts[row.pop("payout_id")][key].append(row)
        return [
            PayoutTrail(
                payout_id=r.id,
                claim_id=r.claim_id,
                asset=r.asset,
                amount=r.amount,
                provider=r.provider_name,
                destination_type=r.destination_type,
                created_at=r.created_at,
                **parts[r.id],
            )
            for r in found
        ]

    async def refusals_of(self, correlation_id: str, *, limit: int) -> list[RefusalTrail]:
        async with self.sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT claim_id, code, refused_at FROM payout_request_refusals WHERE correlation_id = :cid "
                    "ORDER BY refused_at, claim_id LIMIT :limit"
                ),
                {"cid": correlation_id, "limit": limit},
            )
            return [RefusalTrail(r.claim_id, r.code, r.refused_at) for r in rows]

    async def list_disagreements(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        sql = f"SELECT {DISAGREEMENT_COLUMNS} FROM payout_disagreements"  # noqa: S608 - a fixed column list
        sql += " WHERE status = :status" if status is not None else ""
        sql += " ORDER BY id DESC LIMIT :limit"
        async with self.sessions() as session:
            rows = await session.execute(text(sql), {"status": status, "limit": limit})
            return [dict(r) for r in rows.mappings()]

    async def get_disagreement(self, disagreement_id: int) -> dict[str, Any] | None:
        sql = f"SELECT {DISAGREEMENT_COLUMNS} FROM payout_disagreements WHERE id = :id"  # noqa: S608
        async with self.sessions() as session:
            row = (await session.execute(text(sql), {"id": disagreement_id})).mappings().first()
        return dict(row) if row else None

    async def provider_name(self, payout_id: str) -> str | None:
        async with self.sessions() as session:
            value = await session.scalar(text("SELECT provider_name FROM payouts WHERE id = :id"), {"id": payout_id})
        return None if value is None else str(value)


__all__ = ["SqlPayoutQueries", "SqlPayoutRepository", "bound_transactions", "payout_from_row", "sql_transactions"]
