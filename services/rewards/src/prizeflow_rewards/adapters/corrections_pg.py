"""Ledger corrections on PostgreSQL (`LedgerCorrections`); the database re-checks the two-person rule, the
accounts' asset, the one transfer and that a decision is final (migration 0007)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef

Conn = AsyncSession | AsyncConnection

_SELECT = """
    SELECT k.id, k.reference, k.asset, k.amount, k.reason, k.corrects_transfer_id, k.correlation_id, k.status,
           k.proposed_by, k.proposed_at, k.approved_by, k.approved_at, k.rejected_by, k.rejected_at,
           k.decision_reason, k.transfer_id,
           d.kind AS d_kind, d.owner_id AS d_owner, c.kind AS c_kind, c.owner_id AS c_owner
    FROM ledger_corrections k
    JOIN ledger_accounts d ON d.id = k.debit_account_id
    JOIN ledger_accounts c ON c.id = k.credit_account_id
"""
_GET = text(_SELECT + "WHERE k.id = :id")
# Only the correction row: its accounts are the ledger's to lock (after it, in their own order).
_GET_LOCKED = text(_SELECT + "WHERE k.id = :id FOR NO KEY UPDATE OF k")
_BY_REFERENCE = text(_SELECT + "WHERE k.reference = :ref")
_INSERT = text(
    """
    INSERT INTO ledger_corrections (id, reference, debit_account_id, credit_account_id, asset, amount, reason,
                                    corrects_transfer_id, correlation_id, status, proposed_by, proposed_at)
    VALUES (:id, :reference, :debit, :credit, :asset, :amount, :reason, :corrects, :cid, 'proposed', :by, :at)
    ON CONFLICT (reference) DO NOTHING RETURNING id
    """
)
_DECIDE = text(
    """
    UPDATE ledger_corrections SET status = :status, approved_by = :approved_by, approved_at = :approved_at,
        rejected_by = :rejected_by, rejected_at = :rejected_at, decision_reason = :why, transfer_id = :transfer
    WHERE id = :id
    """
)


def _correction(r: Any) -> Correction:
    return Correction(
        id=r.id,
        reference=r.reference,
        debit=AccountRef(AccountKind(r.d_kind), r.d_owner, r.asset),
        credit=AccountRef(AccountKind(r.c_kind), r.c_owner, r.asset),
        amount=r.amount,
        reason=r.reason,
        corrects_transfer_id=r.corrects_transfer_id,
        correlation_id=r.correlation_id,
        proposed_by=r.proposed_by,
        proposed_at=r.proposed_at,
        status=CorrectionStatus(r.status),
        approved_by=r.approved_by,
        approved_at=r.approved_at,
        rejected_by=r.rejected_by,
        rejected_at=r.rejected_at,
        decision_reason=r.decision_reason,
        transfer_id=r.transfer_id,
    )


class SqlLedgerCorrections:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def add(self, correction: Correction) -> bool:
        c = correction
        params = {
            "id": c.id,
            "reference": c.reference,
            "debit": c.debit.id,
            "credit": c.credit.id,
            "asset": c.asset,
            "amount": c.amount,
            "reason": c.reason,
            "corrects": c.corrects_transfer_id,
            "cid": c.correlation_id,
            "by": c.proposed_by,
            "at": c.proposed_at,
        }
        return (await self.session.execute(_INSERT, params)).first() is not None

    async def by_reference(self, reference: str) -> Correction | None:
        row = (await self.session.execute(_BY_REFERENCE, {"ref": reference})).first()
        return _correction(row) if row is not None else None

    async def get(self, correction_id: str, *, lock: bool = False) -> Correction | None:
        row = (await self.session.execute(_GET_LOCKED if lock else _GET, {"id": correction_id})).first()
        return _correction(row) if row is not None else None

    async def list(self, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        clause = "WHERE k.status = :status " if status is not None else ""
        rows = await self.session.execute(
            text(_SELECT + clause + "ORDER BY k.proposed_at DESC, k.id LIMIT :limit"),
            {"status": status.value if status is not None else None, "limit": limit},
        )
        return [_correction(r) for r in rows]

    async def decide(self, correction: Correction) -> None:
        c = correction
        await self.session.execute(
            _DECIDE,
            {
                "id": c.id,
                "status": c.status.value,
                "approved_by": c.approved_by,
                "approved_at": c.approved_at,
                "rejected_by": c.rejected_by,
                "rejected_at": c.rejected_at,
                "why": c.decision_reason,
                "transfer": c.transfer_id,
            },
        )


__all__ = ["SqlLedgerCorrections"]
