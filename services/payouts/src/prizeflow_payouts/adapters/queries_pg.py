"""`SqlPayoutQueries`: the admin API's and the flows' timeline reads of the payouts, each in its own short session."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_payouts.adapters.disagreements_pg import DISAGREEMENT_COLUMNS
from prizeflow_payouts.application.ports import (
    ListFilter,
    PayoutTrail,
    RefusalTrail,
)

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


__all__ = ["SqlPayoutQueries"]
