"""`SqlDisagreements`: providers' reports that contradict a payout's state (migration 0010), one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_payouts.adapters.payout_rows import payouts_from
from prizeflow_payouts.domain.disagreement import Conclusion, Disagreement
from prizeflow_payouts.domain.payout import Payout
from prizeflow_payouts.domain.state import PayoutState

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


class SqlDisagreements:
    """`Disagreements` in the transaction of `session`."""

    __slots__ = ("session",)

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

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
        payouts = {p.id: p for p in payouts_from(found)}
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


__all__ = ["DISAGREEMENT_COLUMNS", "SqlDisagreements"]
