"""What a claim batch whose COMMIT lost its connection needs from PostgreSQL (`Backend`, `LostCommits`).

A COMMIT whose connection is lost may have committed, or not. The only way to tell that cannot guess: end the
lost connection's backend (`pg_terminate_backend`, waiting for it to exit, unless it is gone or idle already), after
which its transaction is committed or rolled back for good, and read back what it wrote (`ClaimIntake`).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from prizeflow_runtime.db import driver_connection

Conn = AsyncSession | AsyncConnection

# The lost connection's backend, unless it is gone or idle (its transaction ended): ended, and waited for (5 s).
# The service's own role may signal its own backends.
_END_BACKEND = text(
    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
    "WHERE pid = :pid AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle'"
)


class SqlBackend:
    """The backend running the session's transaction."""

    def __init__(self, session: Conn) -> None:
        self.session = session

    async def pid(self) -> int:
        return int((await driver_connection(self.session)).get_server_pid())


class BackendStillThereError(Exception):
    """The lost connection's backend did not exit within its wait: its transaction may still commit."""


class SqlLostCommits:
    """`LostCommits` on a session factory: a connection of its own, never the lost one."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def end(self, pid: int) -> None:
        async with self.sessions() as session, session.begin():
            ended = (await session.execute(_END_BACKEND, {"pid": pid})).scalar_one_or_none()
        if ended is False:
            raise BackendStillThereError(f"backend {pid} did not exit")


__all__ = ["BackendStillThereError", "SqlBackend", "SqlLostCommits"]
