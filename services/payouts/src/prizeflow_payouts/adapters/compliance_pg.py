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

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.policy import EMPTY_POLICY, RiskPolicy, VerificationStatus
from prizeflow_payouts.adapters.repository import bound_transactions
from prizeflow_payouts.application.compliance.ports import PlayerCompliance
from prizeflow_payouts.application.compliance.records import ComplianceTransactions
from prizeflow_payouts.domain.compliance.policy import PolicyProposal, ProposalStatus
from prizeflow_payouts.domain.compliance.verification import Screening, ScreeningOutcome, VerificationRecord
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


def compliance_transactions(sessions: async_sessionmaker[AsyncSession]) -> ComplianceTransactions:
    return bound_transactions(sessions, SqlComplianceStore)


class SqlComplianceFacts:
    """`ComplianceFacts` in the caller's transaction (the payout gate's, in the payouts transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_policy(self) -> RiskPolicy:
        document = await self.session.scalar(text("SELECT document FROM risk_policies WHERE status = 'active'"))
        return EMPTY_POLICY if document is None else RiskPolicy.model_validate(document)

    async def players(self, player_ids: list[str]) -> Mapping[str, PlayerCompliance]:
        rows = await self.session.execute(
            text(
                "SELECT player_id, status, country, screening_outcome, screening_cleared_by FROM kyc_verifications "
                "WHERE player_id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": list(player_ids)},
        )
        found = {
            r.player_id: PlayerCompliance(
                player_id=r.player_id,
                verification=VerificationStatus(r.status),
                country=r.country,
                screening_hit=r.screening_outcome == ScreeningOutcome.HIT.value and not r.screening_cleared_by,
            )
            for r in rows
        }
        return {
            p: found.get(p) or PlayerCompliance(player_id=p, verification=VerificationStatus.NOT_STARTED)
            for p in player_ids
        }


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def proposal_view(proposal: PolicyProposal) -> dict[str, Any]:
    """A version as the admin API shows it."""
    return {
        "id": proposal.id,
        "version": proposal.version,
        "policy": proposal.policy.model_dump(mode="json"),
        "status": proposal.status.value,
        "base_version": proposal.base_version,
        "proposed_by": proposal.proposed_by,
        "proposed_at": _iso(proposal.proposed_at),
        "reason": proposal.reason,
        "decided_by": proposal.decided_by,
        "decided_at": _iso(proposal.decided_at),
        "decision_reason": proposal.decision_reason,
    }


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
    """The gate's decisions on the player's payouts (`compliance_decisions`, migration 0021), when that table exists:
    [] on a schema without it."""
    exists = await session.scalar(text("SELECT to_regclass('compliance_decisions') IS NOT NULL"))
    if not exists:
        return []
    rows = await session.execute(
        text(
            "SELECT payout_id, stage, action, reasons, policy_version, list_versions, decided_at AS at "
            "FROM compliance_decisions WHERE player_id = :p ORDER BY decided_at DESC, id DESC LIMIT :n"
        ),
        {"p": player_id, "n": limit},
    )
    return [{k: _iso(v) for k, v in r.items()} for r in rows.mappings()]


__all__ = [
    "POLICY_LOCK_KEY",
    "SqlComplianceFacts",
    "SqlComplianceQueries",
    "SqlComplianceStore",
    "compliance_transactions",
    "proposal_view",
]
