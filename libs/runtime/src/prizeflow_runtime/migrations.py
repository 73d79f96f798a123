"""Alembic plumbing every service shares: its `env.py` body and in-process upgrades.

The messaging tables' own history lives in `prizeflow_runtime.schema_history`, frozen: revisions call those
steps, never the live table definitions in `prizeflow_runtime.db`."""

from __future__ import annotations

import re
from typing import Any


def run_alembic_env(target_metadata: Any = None) -> None:
    """The body of every service's `migrations/env.py`: online migrations over asyncpg from DATABASE_URL.

    Offline mode (SQL script output) is supported too, for DBAs who review DDL before it runs. With
    MIGRATIONS_RUNTIME_ROLE set, the role the service runs as is granted the use of the data after the upgrade, in
    its transaction (`grant_runtime_role`): the owner migrates, the service only reads and writes rows.
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

    runtime_role = os.environ.get("MIGRATIONS_RUNTIME_ROLE", "").strip()

    def run(connection: Any) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
            if runtime_role:
                grant_runtime_role(connection, runtime_role)

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


# The schemas the migrating role owns (directly or as a member, e.g. `public` through pg_database_owner), not the
# system ones.
_OWN_SCHEMAS = """
    SELECT nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
      AND pg_has_role(current_user, nspowner, 'MEMBER')
    ORDER BY 1"""
# Tables only the migrating role (through the inbox maintenance function) may write.
_MAINTENANCE_TABLES = """
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname IN ('inbox_forgotten', 'inbox_legacy_sealed') AND c.relkind = 'r'
      AND pg_has_role(current_user, n.nspowner, 'MEMBER')
    ORDER BY 1"""
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_$]{0,62}")


def grant_runtime_role(connection: Any, role: str) -> None:
    """Let `role` (the running service's login, not the owner) use the data the migrations made, and nothing more.

    CONNECT on the database; in every non-system schema the migrating role owns: USAGE, SELECT/INSERT/UPDATE/DELETE
    on its tables and USAGE/SELECT on its sequences; the same by default on what the migrating role creates later
    there (a schema the runtime role owns, like the dev sandbox rail's, is left alone). No CREATE,
    no TRUNCATE, no ownership: the runtime role cannot disable a trigger, drop a constraint or a table, so the
    append-only and state-machine triggers hold against a compromised service. `connection` is a SQLAlchemy
    connection inside the migrations' transaction (the grants commit or roll back with them); idempotent.
    """
    from sqlalchemy import text

    if not _ROLE_NAME.fullmatch(role):
        raise ValueError(f"MIGRATIONS_RUNTIME_ROLE {role!r} is not a plain lower-case role name")
    if not connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
        raise RuntimeError(f"MIGRATIONS_RUNTIME_ROLE {role!r} does not exist: create the role first")
    # The runtime role must not act as the owner: not the owner itself, not a member of it, not a superuser.
    acts_as_owner = text(
        "SELECT rolsuper OR pg_has_role(:r, current_user, 'MEMBER') OR pg_has_role(:r, datdba, 'MEMBER') "
        "FROM pg_roles, pg_database WHERE rolname = :r AND datname = current_database()"
    )
    if connection.execute(acts_as_owner, {"r": role}).scalar():
        raise RuntimeError(f"MIGRATIONS_RUNTIME_ROLE {role!r} is (or acts as) the owner or a superuser")
    who = f'"{role}"'
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    statements = ['GRANT CONNECT ON DATABASE "' + database.replace('"', '""') + f'" TO {who}']
    schemas = connection.execute(text(_OWN_SCHEMAS))
    for (name,) in schemas.all():
        schema = '"' + name.replace('"', '""') + '"'
        statements += [
            f"GRANT USAGE ON SCHEMA {schema} TO {who}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {who}",
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {who}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {who}",
        ]
    # The inbox maintenance's own bookkeeping (ADR 0008) is written only by its SECURITY DEFINER function: a
    # runtime role that could lower `inbox_forgotten` would let a dropped hour be recreated empty and replayed.
    kept = connection.execute(text(_MAINTENANCE_TABLES))
    for (qualified,) in kept.all():
        statements.append(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {qualified} FROM {who}")
    for statement in statements:
        connection.execute(text(statement))


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


async def upgrade_to_head(alembic_ini: str, database_url: str, *, runtime_role: str | None = None) -> None:
    """Run a service's migrations in-process (tests and benchmarks); same as `alembic upgrade head`."""
    await migrate(alembic_ini, database_url, "head", runtime_role=runtime_role)


async def migrate(
    alembic_ini: str, database_url: str, revision: str, *, downgrade: bool = False, runtime_role: str | None = None
) -> None:
    """`alembic upgrade <revision>` (or `downgrade`) in-process, against `database_url`; with `runtime_role`, as
    MIGRATIONS_RUNTIME_ROLE does, that role is then granted the use of the data (`grant_runtime_role`)."""
    import asyncio
    import os

    from alembic import command
    from alembic.config import Config

    overrides = {"DATABASE_URL": database_url}
    if runtime_role is not None:
        overrides["MIGRATIONS_RUNTIME_ROLE"] = runtime_role

    def run() -> None:
        previous = {name: os.environ.get(name) for name in overrides}
        os.environ.update(overrides)
        try:
            step = command.downgrade if downgrade else command.upgrade
            step(Config(alembic_ini), revision)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    await asyncio.to_thread(run)
