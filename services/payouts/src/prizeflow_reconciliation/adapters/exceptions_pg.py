"""The exception queue's tables on PostgreSQL (migrations 0017, 0024): `ExceptionStore` in the transaction of the
unit of work."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_reconciliation.application.ports import ReconException, Resolution
from prizeflow_reconciliation.domain import ExceptionKind, ExceptionState

_EXCEPTION = text(
    """
    SELECT e.id, e.provider, e.kind, e.state, e.owner, e.payout_id, e.asset, e.amount, e.proposal, e.correlation_id,
           p.player_id, CAST(e.theirs -> 0 ->> 'amount' AS bigint) < CAST(e.ours ->> 'amount' AS bigint) AS underpaid
    FROM recon_exceptions e LEFT JOIN payout_facts p ON p.id = e.payout_id
    WHERE e.id = :id
    """
)


class SqlExceptionStore:
    """`ExceptionStore` in the transaction of `session`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def exception(self, exception_id: int, *, for_update: bool = False) -> ReconException | None:
        sql = _EXCEPTION.text + (" FOR UPDATE OF e" if for_update else "")
        r = (await self.session.execute(text(sql), {"id": exception_id})).mappings().first()
        if r is None:
            return None
        return ReconException(
            id=r["id"],
            provider=r["provider"],
            kind=ExceptionKind(r["kind"]),
            state=ExceptionState(r["state"]),
            owner=r["owner"],
            payout_id=r["payout_id"],
            asset=r["asset"],
            amount=r["amount"],
            proposal=r["proposal"],
            correlation_id=r["correlation_id"],
            player_id=r["player_id"],
            underpaid=bool(r["underpaid"]),
        )

    async def take(self, exception_id: int, owner: str, at: datetime) -> None:
        await self.session.execute(
            text(
                "UPDATE recon_exceptions SET state = 'investigating', owner = :owner, updated_at = :at WHERE id = :id"
            ),
            {"id": exception_id, "owner": owner, "at": at},
        )

    async def propose(self, exception_id: int, proposal: Mapping[str, Any], at: datetime) -> None:
        await self.session.execute(
            text(
                "UPDATE recon_exceptions SET proposal = CAST(:p AS jsonb), updated_at = :at, "
                "state = CASE WHEN state = 'open' THEN 'investigating' ELSE state END, "
                "owner = coalesce(owner, :who) WHERE id = :id"
            ),
            {"id": exception_id, "p": json.dumps(dict(proposal)), "at": at, "who": proposal["proposed_by"]},
        )

    async def resolve(self, exception_id: int, resolution: Resolution, at: datetime) -> None:
        await self.session.execute(
            text(
                """
                UPDATE recon_exceptions SET state = 'resolved', resolution = :action, resolution_reason = :reason,
                    resolved_by = CAST(:people AS text[]), resolved_at = :at, updated_at = :at,
                    adjustment_id = :adjustment, owner = coalesce(owner, :who)
                WHERE id = :id
                """
            ),
            {
                "id": exception_id,
                "action": resolution.action.value,
                "reason": resolution.reason,
                "people": list(resolution.resolved_by),
                "at": at,
                "adjustment": resolution.adjustment_id,
                "who": resolution.resolved_by[0],
            },
        )

    async def add_history(self, exception_id: int, actor: str, what: str, reason: str | None, at: datetime) -> None:
        await self.session.execute(
            text(
                "INSERT INTO recon_exception_history (exception_id, at, actor, what, reason) "
                "VALUES (:id, :at, :actor, :what, :reason)"
            ),
            {"id": exception_id, "at": at, "actor": actor, "what": what, "reason": reason},
        )

    async def open_summary(self) -> list[tuple[str, str, str, int, datetime]]:
        rows = await self.session.execute(
            text(
                "SELECT provider, kind, severity, count(*), min(opened_at) FROM recon_exceptions "
                "WHERE state <> 'resolved' GROUP BY provider, kind, severity"
            )
        )
        return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in rows]


__all__ = ["SqlExceptionStore"]
