"""Alembic plumbing every service shares: its `env.py` body and in-process upgrades.

The messaging tables' own history lives in `prizeflow_runtime.schema_history`, frozen: revisions call those
steps, never the live table definitions in `prizeflow_runtime.db`."""

from __future__ import annotations

from typing import Any


def run_alembic_env(target_metadata: Any = None) -> None:
    """The body of every service's `migrations/env.py`: online migrations over asyncpg from DATABASE_URL.

    Offline mode (SQL script output) is supported too, for DBAs who review DDL before it runs.
    """
    import asyncio
    import os

    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    from prizeflow_runtime.settings import async_database_url

    # Only the database URL: a migrations job needs no other setting of its service (no identity, no Kafka).
    url = async_database_url(os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url") or "")

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def run(connection: Any) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            conn = await _connect_patiently(engine)
            try:
                await conn.run_sync(run)
                await conn.commit()
            finally:
                await conn.close()
        finally:
            await engine.dispose()

    asyncio.run(main())


async def _connect_patiently(engine: Any) -> Any:
    """The first connection, retried while PostgreSQL does not accept connections yet, for at most
    MIGRATIONS_CONNECT_TIMEOUT_S seconds (default 0: one attempt). A migrations job started beside its database (a
    compose stack, a Kubernetes Job racing a new cluster) waits instead of failing; a wrong password still fails at
    once, only "cannot connect (yet)" is retried."""
    import asyncio
    import os
    import sys
    import time

    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    deadline = time.monotonic() + float(os.environ.get("MIGRATIONS_CONNECT_TIMEOUT_S", "0"))
    while True:
        try:
            return await engine.connect()
        except (OSError, InterfaceError, OperationalError, DBAPIError) as err:
            retryable = (
                isinstance(err, OSError) or "CannotConnectNow" in repr(err) or isinstance(err.__cause__, OSError)
            )
            retryable = retryable or "Connect call failed" in str(err) or "starting up" in str(err)
            if not retryable or time.monotonic() >= deadline:
                raise
            note = f"migrations: database not accepting connections yet ({type(err).__name__}); retrying"
            print(note, file=sys.stderr)  # noqa: T201 - a command's progress
            await asyncio.sleep(1)


async def upgrade_to_head(alembic_ini: str, database_url: str) -> None:
    """Run a service's migrations in-process (tests and benchmarks); same as `alembic upgrade head`."""
    await migrate(alembic_ini, database_url, "head")


async def migrate(alembic_ini: str, database_url: str, revision: str, *, downgrade: bool = False) -> None:
    """`alembic upgrade <revision>` (or `downgrade`) in-process, against `database_url`."""
    import asyncio
    import os

    from alembic import command
    from alembic.config import Config

    def run() -> None:
        previous = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = database_url
        try:
            step = command.downgrade if downgrade else command.upgrade
            step(Config(alembic_ini), revision)
        finally:
            if previous is None:
                os.environ.pop("DATABASE_URL", None)
            else:
                os.environ["DATABASE_URL"] = previous

    await asyncio.to_thread(run)
