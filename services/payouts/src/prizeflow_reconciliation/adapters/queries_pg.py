"""The admin API's reads of reconciliation on PostgreSQL, each in its own short session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from prizeflow_reconciliation.domain import ACTIONS, ExceptionKind

_RUN_OUT = (
    "SELECT id AS run_id, provider, since, until, state, started_at, finished_at, lines, matched, exceptions, "
    "error, totals, requested_by FROM recon_runs"
)
_EXCEPTION_OUT = (
    "SELECT id, provider, kind, severity, state, owner, run_id, opened_at, updated_at, payout_id, asset, amount, "
    "absorbed, detail, ours, theirs, proposal, resolution, resolution_reason, resolved_by, resolved_at, adjustment_id "
    "FROM recon_exceptions"
)
_FILTERS = ("state", "kind", "provider", "severity", "owner")


def _exception_out(row: Mapping[Any, Any]) -> dict[str, Any]:
    out = dict(row)
    out["actions"] = [a.value for a in ACTIONS[ExceptionKind(out["kind"])]]
    resolution = out.pop("resolution")
    reason = out.pop("resolution_reason")
    people = out.pop("resolved_by")
    resolved_at = out.pop("resolved_at")
    out["resolution"] = (
        None
        if resolution is None
        else {"action": resolution, "reason": reason, "resolved_by": list(people or []), "resolved_at": resolved_at}
    )
    return out


class SqlReconQueries:
    """The admin API's reads of reconciliation, each in its own short session."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def runs(self, *, provider: str | None, limit: int) -> list[dict[str, Any]]:
        sql = _RUN_OUT + (" WHERE provider = :provider" if provider else "") + " ORDER BY started_at DESC LIMIT :limit"
        async with self.sessions() as session:
            return [
                dict(r) for r in (await session.execute(text(sql), {"provider": provider, "limit": limit})).mappings()
            ]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        async with self.sessions() as session:
            row = (await session.execute(text(_RUN_OUT + " WHERE id = :id"), {"id": run_id})).mappings().first()
        return None if row is None else dict(row)

    async def exceptions(self, filters: Mapping[str, str | None], *, limit: int, offset: int) -> list[dict[str, Any]]:
        where = [f"{name} = :{name}" for name in _FILTERS if filters.get(name)]
        params: dict[str, Any] = {name: filters[name] for name in _FILTERS if filters.get(name)}
        params.update(limit=limit, offset=offset)
        # Column names come from the fixed tuple above; every value is a bound parameter.
        sql = _EXCEPTION_OUT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY opened_at DESC, id DESC LIMIT :limit OFFSET :offset"
        async with self.sessions() as session:
            return [_exception_out(r) for r in (await session.execute(text(sql), params)).mappings()]

    async def exception(self, exception_id: int) -> dict[str, Any] | None:
        async with self.sessions() as session:
            row = (
                (await session.execute(text(_EXCEPTION_OUT + " WHERE id = :id"), {"id": exception_id}))
                .mappings()
                .first()
            )
            if row is None:
                return None
            out = _exception_out(row)
            history = await session.execute(
                text(
                    "SELECT at, actor, what, reason FROM recon_exception_history WHERE exception_id = :id ORDER BY at"
                ),
                {"id": exception_id},
            )
            out["history"] = [dict(h) for h in history.mappings()]
        return out

    async def exceptions_opened(
        self, since: datetime, until: datetime, provider: str | None, *, chunk: int = 5000
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every exception opened in [since, until), oldest first, `chunk` rows at a time (keyset)."""
        last = 0
        while True:
            sql = _EXCEPTION_OUT + " WHERE opened_at >= :since AND opened_at < :until AND id > :last"
            sql += (" AND provider = :provider" if provider else "") + " ORDER BY id LIMIT :chunk"
            async with self.sessions() as session:
                rows = [
                    _exception_out(r)
                    for r in (
                        await session.execute(
                            text(sql),
                            {"since": since, "until": until, "last": last, "provider": provider, "chunk": chunk},
                        )
                    ).mappings()
                ]
            if rows:
                yield rows
            if len(rows) < chunk:
                return
            last = rows[-1]["id"]


__all__ = ["SqlReconQueries"]
