"""Alembic helpers so each service's own migration history creates the shared messaging tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from prizeflow_runtime.db import OUTBOX_NOTIFY_DDL, dead_letters_table, inbox_table, outbox_table


def create_messaging_tables(op: Any) -> None:
    """Call from a service's first Alembic revision: outbox, inbox, dead letters and the outbox notify trigger."""
    bind = op.get_bind()
    outbox_table.create(bind, checkfirst=True)
    inbox_table.create(bind, checkfirst=True)
    dead_letters_table.create(bind, checkfirst=True)
    for ddl in OUTBOX_NOTIFY_DDL:
        bind.execute(text(ddl))


def outbox_delete_on_publish(op: Any) -> None:
    """Upgrade an outbox that marked rows published (`published_at`) to one the relay deletes from.

    Rows already published are removed, rows still pending stay and go out as before. A no-op on a
    database created with the current `outbox_table`.
    """
    bind = op.get_bind()
    marked = bind.execute(
        text(
            "SELECT 1 FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'outbox' AND column_name = 'published_at'"
        )
    ).first()
    if marked is None:
        return
    bind.execute(text("DELETE FROM outbox WHERE published_at IS NOT NULL"))
    bind.execute(text("DROP INDEX IF EXISTS outbox_unpublished"))
    bind.execute(text("ALTER TABLE outbox DROP COLUMN published_at"))


def outbox_mark_on_publish(op: Any) -> None:
    """The downgrade of `outbox_delete_on_publish`: every row left in the outbox is still unpublished."""
    bind = op.get_bind()
    bind.execute(text("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS published_at timestamptz"))
    bind.execute(text("CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL"))


def inbox_outcomes(op: Any) -> None:
    """Upgrade the messaging tables so refusals are remembered: the inbox keeps each event's digest and
    outcome (applied or refused), and `dead_letters` keeps every refused record. A no-op on a database
    created with the current tables."""
    bind = op.get_bind()
    bind.execute(text("ALTER TABLE inbox ADD COLUMN IF NOT EXISTS digest bytea"))
    bind.execute(
        text(
            "ALTER TABLE inbox ADD COLUMN IF NOT EXISTS outcome varchar(16) NOT NULL DEFAULT 'applied' "
            "CONSTRAINT inbox_outcome CHECK (outcome IN ('applied', 'refused'))"
        )
    )
    dead_letters_table.create(bind, checkfirst=True)


def inbox_outcomes_downgrade(op: Any) -> None:
    bind = op.get_bind()
    dead_letters_table.drop(bind, checkfirst=True)
    bind.execute(text("DELETE FROM inbox WHERE outcome = 'refused'"))  # before: a refusal left no inbox row
    bind.execute(text("ALTER TABLE inbox DROP COLUMN IF EXISTS outcome"))
    bind.execute(text("ALTER TABLE inbox DROP COLUMN IF EXISTS digest"))


def drop_messaging_tables(op: Any) -> None:
    bind = op.get_bind()
    bind.execute(text("DROP TRIGGER IF EXISTS outbox_notify ON outbox"))
    bind.execute(text("DROP FUNCTION IF EXISTS prizeflow_outbox_notify()"))
    dead_letters_table.drop(bind, checkfirst=True)
    inbox_table.drop(bind, checkfirst=True)
    outbox_table.drop(bind, checkfirst=True)


def run_alembic_env(target_metadata: Any = None) -> None:
    """The body of every service's `migrations/env.py`: online migrations over asyncpg from DATABASE_URL.

    Offline mode (SQL script output) is supported too, for DBAs who review DDL before it runs.
    """
    import asyncio
    import os

    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    from prizeflow_runtime.settings import ServiceSettings

    url = os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url") or ""
    url = ServiceSettings(database_url=url).database_url

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
        async with engine.connect() as conn:
            await conn.run_sync(run)
            await conn.commit()
        await engine.dispose()

    asyncio.run(main())


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
