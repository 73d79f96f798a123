"""`SessionStore` on PostgreSQL (`console_sessions`, `console_session_ends`: migration 0001). One short statement
per call; every replica of the console reads the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_console.domain.session import EndReason, SessionRecord
from prizeflow_console.domain.viewer import Viewer

_COLUMNS = (
    "id_hash, subject, name, roles, access_token, token_expires_at, created_at, last_seen_at, ended_at, end_reason"
)


def _record(row: Any) -> SessionRecord:
    return SessionRecord(
        id_hash=bytes(row.id_hash),
        viewer=Viewer.of(row.subject, row.name, row.roles),
        access_token=row.access_token,
        token_expires_at=row.token_expires_at,
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
        ended_at=row.ended_at,
        end_reason=EndReason(row.end_reason) if row.end_reason else None,
    )


class PgSessionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, record: SessionRecord) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    f"INSERT INTO console_sessions ({_COLUMNS}) VALUES (:id_hash, :subject, :name, :roles, :token, "  # noqa: S608
                    ":token_expires_at, :created_at, :last_seen_at, NULL, NULL)"
                ),
                {
                    "id_hash": record.id_hash,
                    "subject": record.viewer.user_id,
                    "name": record.viewer.name,
                    "roles": sorted(r.value for r in record.viewer.roles),
                    "token": record.access_token,
                    "token_expires_at": record.token_expires_at,
                    "created_at": record.created_at,
                    "last_seen_at": record.last_seen_at,
                },
            )

    async def get(self, id_hash: bytes) -> SessionRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {_COLUMNS} FROM console_sessions WHERE id_hash = :h"),  # noqa: S608
                    {"h": id_hash},
                )
            ).first()
        return _record(row) if row is not None else None

    async def touch(self, id_hash: bytes, at: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE console_sessions SET last_seen_at = :at "
                    "WHERE id_hash = :h AND ended_at IS NULL AND last_seen_at < :at"
                ),
                {"h": id_hash, "at": at},
            )

    async def end(self, id_hash: bytes, *, reason: EndReason, at: datetime) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                text(
                    "UPDATE console_sessions SET ended_at = :at, end_reason = :reason "
                    "WHERE id_hash = :h AND ended_at IS NULL RETURNING 1"
                ),
                {"h": id_hash, "at": at, "reason": reason.value},
            )
            return result.first() is not None

    async def end_all_of(
        self, subject: str, *, actor: str, actor_roles: Sequence[str], reason: str, at: datetime
    ) -> int:
        async with self.engine.begin() as conn:
            ended = (
                await conn.execute(
                    text(
                        "UPDATE console_sessions SET ended_at = :at, end_reason = 'ended_by_admin' "
                        "WHERE subject = :subject AND ended_at IS NULL RETURNING 1"
                    ),
                    {"subject": subject, "at": at},
                )
            ).all()
            await conn.execute(
                text(
                    "INSERT INTO console_session_ends (actor, actor_roles, subject, reason, sessions_ended, at) "
                    "VALUES (:actor, :roles, :subject, :reason, :n, :at)"
                ),
                {"actor": actor, "roles": list(actor_roles), "subject": subject, "reason": reason, "n": len(ended),
                 "at": at},
            )  # fmt: skip
        return len(ended)


__all__ = ["PgSessionStore"]
