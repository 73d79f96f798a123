"""Compliance records on PostgreSQL (migration 0019): `SqlComplianceStore` (one transaction's view, for the use
cases), `SqlComplianceFacts` (the payout gate's reads, in the payouts transaction) and `SqlComplianceQueries` (the
admin and player API's reads)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_compliance.application.ports import (
    PlayerCompliance,
    RescreenClaim,
    ScreeningMatch,
)
from prizeflow_compliance.application.views import iso as _iso
from prizeflow_compliance.application.views import proposal_view
from prizeflow_compliance.domain.policy import PolicyProposal, ProposalStatus
from prizeflow_compliance.domain.verification import Screening, ScreeningOutcome, VerificationRecord
from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.policy import EMPTY_POLICY, RiskPolicy, VerificationStatus
from prizeflow_runtime.outbox import add_events

# Any constant distinct from the service's other advisory locks: proposals and decisions of the policy, one at a time.
POLICY_LOCK_KEY: Final = 0x52_49_53_4B_50_4F_4C  # "RISKPOL"

_VERIFICATION_COLUMNS = (
    "player_id, reference, vendor, vendor_ref, status, country, sequence, screening_outcome, screening_versions, "
    "screening_matches, screening_cleared_by, updated_at"
)
_INSERT_VERIFICATION = text(
    """
    WITH inserted AS (
        INSERT INTO kyc_verifications (player_id, reference, vendor, vendor_ref, status, country, sequence,
                                       screening_outcome, screening_versions, screening_matches, updated_at)
        VALUES (:player_id, :reference, :vendor, :vendor_ref, :status, :country, :sequence, :outcome,
                CAST(:versions AS jsonb), CAST(:matches AS jsonb), :at)
        ON CONFLICT (player_id) DO NOTHING
        RETURNING player_id, sequence, status
    )
    INSERT INTO kyc_verification_history (player_id, sequence, status, detail, at)
    SELECT player_id, sequence, status, :detail, :at FROM inserted
    RETURNING player_id
    """
)
_UPDATE_VERIFICATION = text(
    """
    UPDATE kyc_verifications SET status = :status, country = :country, sequence = :sequence,
        screening_outcome = :outcome, screening_versions = CAST(:versions AS jsonb),
        screening_matches = CAST(:matches AS jsonb), updated_at = :at
    WHERE player_id = :player_id
    """
)
_HISTORY = text(
    "INSERT INTO kyc_verification_history (player_id, sequence, status, detail, at) "
    "VALUES (:player_id, :sequence, :status, :detail, :at)"
)
_PROPOSAL_COLUMNS = (
    "id, version, document, status, base_version, proposed_by, proposed_at, reason, decided_by, decided_at, "
    "decision_reason"
)


def _verification(row: Mapping[Any, Any]) -> VerificationRecord:
    return VerificationRecord(
        player_id=row["player_id"],
        reference=row["reference"],
        vendor=row["vendor"],
        vendor_ref=row["vendor_ref"],
        status=VerificationStatus(row["status"]),
        sequence=int(row["sequence"]),
        updated_at=row["updated_at"],
        country=row["country"],
        screening=Screening(
            outcome=ScreeningOutcome(row["screening_outcome"]),
            versions=dict(row["screening_versions"] or {}),
            matches=tuple(row["screening_matches"] or ()),
            cleared_by=tuple(row["screening_cleared_by"]) if row["screening_cleared_by"] is not None else None,
        ),
    )


def _verification_params(record: VerificationRecord, detail: str) -> dict[str, Any]:
    return {
        "player_id": record.player_id,
        "reference": record.reference,
        "vendor": record.vendor,
        "vendor_ref": record.vendor_ref,
        "status": record.status.value,
        "country": record.country,
        "sequence": record.sequence,
        "outcome": record.screening.outcome.value,
        "versions": json.dumps(dict(record.screening.versions)),
        "matches": json.dumps([dict(m) for m in record.screening.matches]),
        "at": record.updated_at,
        "detail": detail,
    }


def _proposal(row: Mapping[Any, Any]) -> PolicyProposal:
    return PolicyProposal(
        id=int(row["id"]),
        policy=RiskPolicy.model_validate(row["document"]),
        status=ProposalStatus(row["status"]),
        base_version=int(row["base_version"]),
        proposed_by=row["proposed_by"],
        proposed_at=row["proposed_at"],
        reason=row["reason"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
    )


class SqlComplianceStore:
    """`ComplianceStore` on one session (its transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def verification(self, player_id: str, *, for_update: bool = False) -> VerificationRecord | None:
        lock = " FOR UPDATE" if for_update else ""
        row = (
            (
                await self.session.execute(
                    text(f"SELECT {_VERIFICATION_COLUMNS} FROM kyc_verifications WHERE player_id = :p{lock}"),  # noqa: S608 - fixed columns
                    {"p": player_id},
                )
            )
            .mappings()
            .first()
        )
        return _verification(row) if row else None

    async def insert_verification(self, record: VerificationRecord, *, detail: str) -> bool:
        result = await self.session.execute(_INSERT_VERIFICATION, _verification_params(record, detail))
        return result.first() is not None

    async def update_verification(self, record: VerificationRecord, *, detail: str) -> None:
        params = _verification_params(record, detail)
        await self.session.execute(_UPDATE_VERIFICATION, params)
        await self.session.execute(_HISTORY, params)

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        await add_events(self.session, events)

    async def lock_policies(self) -> None:
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": POLICY_LOCK_KEY})

    async def active_proposal(self) -> PolicyProposal | None:
        row = (
            (
                await self.session.execute(
                    text(f"SELECT {_PROPOSAL_COLUMNS} FROM risk_policies WHERE status = 'active'")  # noqa: S608 - fixed columns
                )
            )
            .mappings()
            .first()
        )
        return _proposal(row) if row else None

    async def proposal(self, proposal_id: int) -> PolicyProposal | None:
        row = (
            (
                await self.session.execute(
                    text(f"SELECT {_PROPOSAL_COLUMNS} FROM risk_policies WHERE id = :id FOR UPDATE"),  # noqa: S608 - fixed columns
                    {"id": proposal_id},
                )
            )
            .mappings()
            .first()
        )
        return _proposal(row) if row else None

    async def next_policy_version(self) -> int:
        value = await self.session.scalar(text("SELECT coalesce(max(version), 0) + 1 FROM risk_policies"))
        return int(value or 1)

    async def insert_proposal(self, proposal: PolicyProposal) -> int:
        value = await self.session.scalar(
            text(
                "INSERT INTO risk_policies (version, document, status, base_version, proposed_by, proposed_at, reason) "
                "VALUES (:v, CAST(:doc AS jsonb), 'proposed', :base, :by, :at, :reason) RETURNING id"
            ),
            {
                "v": proposal.version,
                "doc": proposal.policy.model_dump_json(),
                "base": proposal.base_version,
                "by": proposal.proposed_by,
                "at": proposal.proposed_at,
                "reason": proposal.reason,
            },
        )
        return int(value)

    async def decide_proposal(
        self, proposal_id: int, *, to: ProposalStatus, by: str, reason: str | None, at: datetime
    ) -> None:
        await self.session.execute(
            text(
                "UPDATE risk_policies SET status = :to, decided_by = :by, decided_at = :at, decision_reason = :reason "
                "WHERE id = :id"
            ),
            {"id": proposal_id, "to": to.value, "by": by, "at": at, "reason": reason},
        )

    async def supersede(self, proposal_id: int) -> None:
        await self.session.execute(
            text("UPDATE risk_policies SET status = 'superseded' WHERE id = :id"), {"id": proposal_id}
        )

    async def announced_policy_version(self) -> int | None:
        value = await self.session.scalar(text("SELECT version FROM risk_policy_announcements FOR UPDATE"))
        return None if value is None else int(value)

    async def record_policy_announcement(self, version: int, at: datetime) -> None:
        await self.session.execute(
            text(
                "INSERT INTO risk_policy_announcements (id, version, published_at) VALUES (true, :v, :at) "
                "ON CONFLICT (id) DO UPDATE SET version = :v, published_at = :at"
            ),
            {"v": version, "at": at},
        )


# A verified player whose stored screening names another version than `:current` (source → loaded version, the
# configured sources) for one of its sources. The same test as `PlayerCompliance.screening_stale`.
_STALE = """
    k.status = 'verified' AND EXISTS (
        SELECT 1 FROM jsonb_each_text(CAST(:current AS jsonb)) AS c(source, version)
        WHERE k.screening_versions ->> c.source IS DISTINCT FROM c.version
    )
"""
_COUNT_STALE = text(f"SELECT count(*) FROM kyc_verifications k WHERE {_STALE}")  # noqa: S608 - fixed text
# Players with a payout waiting for their re-screen first: held `screening_pending`, or a retry the worker does not
# create until then (a retryable failure, an approved or submitting payout tried before: the worker's
# `_deferred`); locked rows (another replica's claim) skipped; the lease keeps a claimed player this run's after the
# claim commits (the vendor is called outside any transaction).
_CLAIM_STALE = text(
    f"""
    WITH picked AS (
        SELECT k.player_id FROM kyc_verifications k
        WHERE {_STALE} AND (k.rescreen_lease_until IS NULL OR k.rescreen_lease_until <= :now)
        ORDER BY k.player_id IN (
                SELECT p.player_id FROM payout_facts p
                WHERE (p.state = 'pending_approval' AND p.hold_code = 'screening_pending')
                   OR (p.state = 'failed' AND p.next_attempt_at IS NOT NULL)
                   OR (p.state IN ('approved', 'submitting') AND p.attempts > 0)
            ) DESC, k.updated_at, k.player_id
        LIMIT :limit
        FOR UPDATE OF k SKIP LOCKED
    )
    UPDATE kyc_verifications k SET rescreen_lease_until = :until
    FROM picked WHERE k.player_id = picked.player_id
    RETURNING k.player_id, k.reference, k.vendor_ref, k.sequence, k.screening_outcome, k.screening_matches
    """  # noqa: S608 - fixed text
)
# Only the record as claimed (still verified, the same sequence): a revocation or another screening meanwhile wins.
_RESCREENED = text(
    """
    WITH moved AS (
        UPDATE kyc_verifications SET sequence = sequence + 1, screening_outcome = :outcome,
            screening_versions = CAST(:versions AS jsonb), screening_matches = CAST(:matches AS jsonb),
            updated_at = :at, rescreen_lease_until = NULL
        WHERE player_id = :player_id AND status = 'verified' AND sequence = :sequence
        RETURNING player_id, sequence, status
    )
    INSERT INTO kyc_verification_history (player_id, sequence, status, detail, at)
    SELECT player_id, sequence, status, :detail, :at FROM moved
    RETURNING player_id
    """
)
_REFUSED = text(
    """
    WITH moved AS (
        UPDATE kyc_verifications SET sequence = sequence + 1, updated_at = :at, rescreen_lease_until = :retry_at
        WHERE player_id = :player_id AND status = 'verified' AND sequence = :sequence
        RETURNING player_id, sequence, status
    )
    INSERT INTO kyc_verification_history (player_id, sequence, status, detail, at)
    SELECT player_id, sequence, status, :detail, :at FROM moved
    RETURNING player_id
    """
)
_NEWEST_LISTS = text(
    "SELECT DISTINCT ON (source) source, version FROM sanctions_list_versions ORDER BY source, fetched_at DESC"
)


class SqlRescreenStore(SqlComplianceStore):
    """`RescreenStore` on one session (its transaction): one statement per call."""

    async def newest_versions(self) -> Mapping[str, str]:
        return {r.source: r.version for r in await self.session.execute(_NEWEST_LISTS)}

    async def count_stale(self, current: Mapping[str, str]) -> int:
        return int(await self.session.scalar(_COUNT_STALE, {"current": json.dumps(dict(current))}) or 0)

    async def claim_stale(
        self, current: Mapping[str, str], *, limit: int, lease_until: datetime, now: datetime
    ) -> list[RescreenClaim]:
        rows = await self.session.execute(
            _CLAIM_STALE, {"current": json.dumps(dict(current)), "limit": limit, "until": lease_until, "now": now}
        )
        return [
            RescreenClaim(
                player_id=r.player_id,
                reference=r.reference,
                vendor_ref=r.vendor_ref,
                sequence=int(r.sequence),
                outcome=ScreeningOutcome(r.screening_outcome),
                entries=frozenset(
                    (str(m.get("source")), str(m.get("entry_uid")))
                    for m in (r.screening_matches or ())
                    if isinstance(m, Mapping)
                ),
            )
            for r in rows
        ]

    async def record_rescreen(self, claim: RescreenClaim, screening: Screening, *, at: datetime, detail: str) -> bool:
        result = await self.session.execute(
            _RESCREENED,
            {
                "player_id": claim.player_id,
                "sequence": claim.sequence,
                "outcome": screening.outcome.value,
                "versions": json.dumps(dict(screening.versions)),
                "matches": json.dumps([dict(m) for m in screening.matches]),
                "at": at,
                "detail": detail[:200],
            },
        )
        return result.first() is not None

    async def record_refusal(self, claim: RescreenClaim, *, at: datetime, detail: str, retry_at: datetime) -> bool:
        result = await self.session.execute(
            _REFUSED,
            {
                "player_id": claim.player_id,
                "sequence": claim.sequence,
                "at": at,
                "retry_at": retry_at,
                "detail": detail[:200],
            },
        )
        return result.first() is not None


class SqlComplianceFacts:
    """`ComplianceFacts` in the caller's transaction (the payout gate's, in the payouts transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_policy(self) -> RiskPolicy:
        document = await self.session.scalar(text("SELECT document FROM risk_policies WHERE status = 'active'"))
        return EMPTY_POLICY if document is None else RiskPolicy.model_validate(document)

    async def players(self, player_ids: list[str]) -> Mapping[str, PlayerCompliance]:
        # `screening_cleared_by` (a wholesale clearance column of 0019) is not read: no code writes it, and a
        # player is cleared per list entry (screening_clearances), so it never waives an entry (fail closed).
        rows = await self.session.execute(
            text(
                "SELECT player_id, status, country, screening_outcome, screening_versions, screening_matches "
                "FROM kyc_verifications WHERE player_id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": list(player_ids)},
        )
        found = {
            r.player_id: PlayerCompliance(
                player_id=r.player_id,
                verification=VerificationStatus(r.status),
                country=r.country,
                screening_matches=_player_matches(r.screening_outcome, r.screening_matches),
                screening_versions=None
                if r.screening_outcome == ScreeningOutcome.NOT_SCREENED.value
                else dict(r.screening_versions or {}),
            )
            for r in rows
        }
        return {
            p: found.get(p) or PlayerCompliance(player_id=p, verification=VerificationStatus.NOT_STARTED)
            for p in player_ids
        }


def _player_matches(outcome: str, stored: Any) -> tuple[ScreeningMatch, ...]:
    """The stored screening's matched entries (a hit names at least one: CHECK kyc_verifications_hit_has_matches)."""
    if outcome != ScreeningOutcome.HIT.value:
        return ()
    return tuple(
        ScreeningMatch(
            source=str(m.get("source", "")),
            entry_uid=str(m.get("entry_uid", "")),
            entry_name=str(m.get("entry_name", "")),
            kind=str(m.get("kind", "name")),
            score=int(m.get("score") or 0),
        )
        for m in (stored or ())
        if isinstance(m, Mapping)
    )


class SqlComplianceQueries:
    """The compliance API's reads."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def policy(self, *, limit: int = 100) -> dict[str, Any]:
        """The active version and the latest proposals (newest first)."""
        async with self.sessions() as session:
            rows = (
                (
                    await session.execute(
                        text(f"SELECT {_PROPOSAL_COLUMNS} FROM risk_policies ORDER BY version DESC LIMIT :n"),  # noqa: S608 - fixed columns
                        {"n": limit},
                    )
                )
                .mappings()
                .all()
            )
            active_row = (
                (
                    await session.execute(
                        text(f"SELECT {_PROPOSAL_COLUMNS} FROM risk_policies WHERE status = 'active'")  # noqa: S608 - fixed columns
                    )
                )
                .mappings()
                .first()
            )
        active = None
        if active_row is not None:
            p = _proposal(active_row)
            active = {
                "id": p.id,
                "version": p.version,
                "policy": p.policy.model_dump(mode="json"),
                "proposed_by": p.proposed_by,
                "approved_by": p.decided_by,
                "activated_at": _iso(p.decided_at),
            }
        return {"active": active, "proposals": [proposal_view(_proposal(r)) for r in rows]}

    async def proposal(self, proposal_id: int) -> dict[str, Any] | None:
        async with self.sessions() as session:
            row = (
                (
                    await session.execute(
                        text(f"SELECT {_PROPOSAL_COLUMNS} FROM risk_policies WHERE id = :id"),  # noqa: S608 - fixed columns
                        {"id": proposal_id},
                    )
                )
                .mappings()
                .first()
            )
        return proposal_view(_proposal(row)) if row else None

    async def player(self, player_id: str, *, history_limit: int = 200, decisions_limit: int = 100) -> dict[str, Any]:
        """A player's verification, its history, screening and the gate's decisions (staff only)."""
        async with self.sessions() as session:
            row = (
                (
                    await session.execute(
                        text(f"SELECT {_VERIFICATION_COLUMNS} FROM kyc_verifications WHERE player_id = :p"),  # noqa: S608 - fixed columns
                        {"p": player_id},
                    )
                )
                .mappings()
                .first()
            )
            history = (
                await session.execute(
                    text(
                        "SELECT status, at, detail FROM kyc_verification_history WHERE player_id = :p "
                        "ORDER BY sequence LIMIT :n"
                    ),
                    {"p": player_id, "n": history_limit},
                )
            ).mappings()
            history_rows = [{k: _iso(v) for k, v in h.items()} for h in history]
            decisions = await _decisions(session, player_id, decisions_limit)
        record = _verification(row) if row else None
        return {
            "player_id": player_id,
            "status": (record.status if record else VerificationStatus.NOT_STARTED).value,
            "reference": record.reference if record else None,
            "country": record.country if record else None,
            "sequence": record.sequence if record else 0,
            "history": history_rows,
            "screening": {
                "outcome": (record.screening.outcome if record else ScreeningOutcome.NOT_SCREENED).value,
                "versions": dict(record.screening.versions) if record else {},
                "matches": [dict(m) for m in record.screening.matches] if record else [],
                "cleared_by": list(record.screening.cleared_by or ()) if record else [],
            },
            "decisions": decisions,
        }


async def _decisions(session: AsyncSession, player_id: str, limit: int) -> list[dict[str, Any]]:
    """The gate's decisions on the player's payouts, as the payout lifecycle publishes them (`payout_gate_decisions`,
    a view of its `compliance_decisions`, migration 0032)."""
    rows = await session.execute(
        text(
            "SELECT payout_id, stage, action, reasons, policy_version, list_versions, decided_at AS at "
            "FROM payout_gate_decisions WHERE player_id = :p ORDER BY decided_at DESC, id DESC LIMIT :n"
        ),
        {"p": player_id, "n": limit},
    )
    return [{k: _iso(v) for k, v in r.items()} for r in rows.mappings()]


__all__ = [
    "POLICY_LOCK_KEY",
    "SqlComplianceFacts",
    "SqlComplianceQueries",
    "SqlComplianceStore",
    "SqlRescreenStore",
    "proposal_view",
]
