"""Top-ups and their adjustments on PostgreSQL (`TopUpRepository`); the database re-checks every state rule
(migration 0006)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from prizeflow_rewards.domain.topups import Adjustment, AdjustmentKind, AdjustmentStatus, TopUp, TopUpStatus

Conn = AsyncSession | AsyncConnection

_COLUMNS = (
    "id, player_id, asset, amount, provider, status, session_ref, url, expires_at, correlation_id, created_at, "
    "payment_ref, credit_transfer_id, credited_at"
)
_GET = text(f"SELECT {_COLUMNS} FROM top_ups WHERE id = :id")  # noqa: S608 - constant column list
_GET_LOCKED = text(f"SELECT {_COLUMNS} FROM top_ups WHERE id = :id FOR NO KEY UPDATE")  # noqa: S608
_LOCK_MATCHING = text(
    f"SELECT {_COLUMNS} FROM top_ups "  # noqa: S608 - constant column list
    "WHERE id = ANY(CAST(:ids AS text[])) OR session_ref = ANY(CAST(:sessions AS text[])) "
    "OR payment_ref = ANY(CAST(:payments AS text[])) ORDER BY id FOR NO KEY UPDATE"
)
# By our id first, then the provider's session, then its payment.
_FIND = text(
    f"SELECT * FROM (SELECT {_COLUMNS}, 1 AS pri FROM top_ups WHERE id = :id "  # noqa: S608 - constant columns
    f"UNION ALL SELECT {_COLUMNS}, 2 FROM top_ups WHERE session_ref = :session "
    f"UNION ALL SELECT {_COLUMNS}, 3 FROM top_ups WHERE payment_ref = :payment) AS found ORDER BY pri LIMIT 1"
)
_INSERT = text(
    f"INSERT INTO top_ups ({_COLUMNS}) VALUES (:id, :player_id, :asset, :amount, :provider, :status, "  # noqa: S608
    ":session_ref, :url, :expires_at, :correlation_id, :created_at, NULL, NULL, NULL) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
_SUM_RECENT = text(
    "SELECT coalesce(sum(amount), 0) FROM top_ups WHERE player_id = :p AND asset = :a AND created_at > :since "
    "AND (status = 'credited' OR (status = 'created' AND expires_at > now()))"
)
_ADJ_COLUMNS = "seq, top_up_id, kind, adjustment_ref, amount, status, debited, receivable, credited, applied_at"
_ADJUSTMENTS = text(f"SELECT {_ADJ_COLUMNS} FROM top_up_adjustments WHERE top_up_id = :t ORDER BY seq")  # noqa: S608
_FIND_ADJ = text(
    f"SELECT {_ADJ_COLUMNS} FROM top_up_adjustments "  # noqa: S608 - constant column list
    "WHERE provider = :p AND kind = :k AND adjustment_ref = :r"
)
_RECORD_ADJ = text(
    "INSERT INTO top_up_adjustments (top_up_id, provider, kind, adjustment_ref, amount, status, provider_event_id) "
    "VALUES (:t, :p, :k, :r, :amount, 'pending', :e)"
)
_APPLY_ADJ = text(
    "UPDATE top_up_adjustments SET status = 'applied', debited = :d, receivable = :o, credited = :c, applied_at = :at "
    "WHERE top_up_id = :t AND kind = :k AND adjustment_ref = :r AND status = 'pending'"
)


def _top_up(row: Any) -> TopUp:
    return TopUp(
        id=row.id,
        player_id=row.player_id,
        asset=row.asset,
        amount=row.amount,
        provider=row.provider,
        status=TopUpStatus(row.status),
        session_ref=row.session_ref,
        url=row.url,
        expires_at=row.expires_at,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        payment_ref=row.payment_ref,
        credit_transfer_id=row.credit_transfer_id,
        credited_at=row.credited_at,
    )


_OF_FLOW = text(
    f"SELECT {_COLUMNS} FROM top_ups WHERE correlation_id = :cid ORDER BY created_at, id LIMIT :limit"  # noqa: S608
)


async def top_ups_of_flow(tx: Conn, correlation_id: str, *, limit: int) -> list[TopUp]:
    """The top-ups of one flow (a correlation id), oldest first."""
    return [_top_up(r) for r in await tx.execute(_OF_FLOW, {"cid": correlation_id, "limit": limit})]


def _adjustment(row: Any) -> Adjustment:
    return Adjustment(
        top_up_id=row.top_up_id,
        kind=AdjustmentKind(row.kind),
        adjustment_ref=row.adjustment_ref,
        amount=row.amount,
        status=AdjustmentStatus(row.status),
        debited=row.debited,
        receivable=row.receivable,
        credited=row.credited,
        seq=row.seq,
        applied_at=row.applied_at,
    )


class SqlTopUpRepository:
    def __init__(self, session: Conn) -> None:
        self.session = session

    async def get(self, top_up_id: str, *, lock: bool = False) -> TopUp | None:
        row = (await self.session.execute(_GET_LOCKED if lock else _GET, {"id": top_up_id})).first()
        return _top_up(row) if row is not None else None

    async def lock_player(self, player_id: str) -> None:
        await self.session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": f"rewards:top-up:{player_id}"}
        )

    async def open_or_credited_since(self, player_id: str, asset: str, *, since: datetime) -> int:
        total = (await self.session.execute(_SUM_RECENT, {"p": player_id, "a": asset, "since": since})).scalar_one()
        return int(total)

    async def add(self, top_up: TopUp) -> bool:
        row = (
            await self.session.execute(
                _INSERT,
                {
                    "id": top_up.id,
                    "player_id": top_up.player_id,
                    "asset": top_up.asset,
                    "amount": top_up.amount,
                    "provider": top_up.provider,
                    "status": top_up.status.value,
                    "session_ref": top_up.session_ref,
                    "url": top_up.url,
                    "expires_at": top_up.expires_at,
                    "correlation_id": top_up.correlation_id,
                    "created_at": top_up.created_at,
                },
            )
        ).first()
        return row is not None

    async def lock_matching(
        self, *, top_up_ids: Sequence[str], session_refs: Sequence[str], payment_refs: Sequence[str]
    ) -> list[TopUp]:
        rows = await self.session.execute(
            _LOCK_MATCHING, {"ids": list(top_up_ids), "sessions": list(session_refs), "payments": list(payment_refs)}
        )
        return [_top_up(r) for r in rows]

    async def find(self, *, top_up_id: str | None, session_ref: str | None, payment_ref: str | None) -> TopUp | None:
        rows = list(
            await self.session.execute(_FIND, {"id": top_up_id, "session": session_ref, "payment": payment_ref})
        )
        return _top_up(rows[0]) if rows else None

    async def set_status(self, top_up_id: str, status: TopUpStatus) -> None:
        await self.session.execute(
            text("UPDATE top_ups SET status = :s WHERE id = :id"), {"s": status.value, "id": top_up_id}
        )

    async def mark_credited(
        self, top_up_id: str, *, payment_ref: str | None, transfer_id: uuid.UUID, at: datetime
    ) -> None:
        await self.session.execute(
            text(
                "UPDATE top_ups SET status = 'credited', credit_transfer_id = :t, credited_at = :at, "
                "payment_ref = coalesce(:pr, payment_ref) WHERE id = :id"
            ),
            {"t": transfer_id, "at": at, "pr": payment_ref, "id": top_up_id},
        )

    async def adjustments(self, top_up_id: str) -> list[Adjustment]:
        return [_adjustment(r) for r in await self.session.execute(_ADJUSTMENTS, {"t": top_up_id})]

    async def record_adjustment(self, provider: str, adjustment: Adjustment, *, provider_event_id: str) -> None:
        await self.session.execute(
            _RECORD_ADJ,
            {
                "t": adjustment.top_up_id,
                "p": provider,
                "k": adjustment.kind.value,
                "r": adjustment.adjustment_ref,
                "amount": adjustment.amount,
                "e": provider_event_id,
            },
        )

    async def find_adjustment(self, provider: str, kind: str, adjustment_ref: str) -> Adjustment | None:
        row = (await self.session.execute(_FIND_ADJ, {"p": provider, "k": kind, "r": adjustment_ref})).first()
        return _adjustment(row) if row is not None else None

    async def mark_applied(self, adjustment: Adjustment) -> None:
        result = await self.session.execute(
            _APPLY_ADJ,
            {
                "d": adjustment.debited,
                "o": adjustment.receivable,
                "c": adjustment.credited,
                "at": adjustment.applied_at,
                "t": adjustment.top_up_id,
                "k": adjustment.kind.value,
                "r": adjustment.adjustment_ref,
            },
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RuntimeError(f"adjustment {adjustment.kind} {adjustment.adjustment_ref} was not pending")


__all__ = ["SqlTopUpRepository", "top_ups_of_flow"]
