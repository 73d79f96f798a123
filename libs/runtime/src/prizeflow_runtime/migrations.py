"""Alembic plumbing every service shares: its `env.py` body and in-process upgrades.

The messaging tables' own history lives in `prizeflow_runtime.schema_history`, frozen: revisions call those
steps, never the live table definitions in `prizeflow_runtime.db`.

Every revision declares its `phase` ("expand" or "contract", `prizeflow_runtime.schema_compat`); the environment
records it in `prizeflow_schema_phases` as the revision is applied, in the same transaction, which is how a running
service learns the phases of revisions newer than itself. A migration runs with its own session limits: a short
`lock_timeout` (MIGRATIONS_LOCK_TIMEOUT_MS) so that it never queues behind a long transaction while every query on
the table queues behind it, a long `statement_timeout` (MIGRATIONS_STATEMENT_TIMEOUT_MS). Each revision commits on its
own (with its phase), so no lock one takes is held while the next runs; a revision that lost its lock wait is
rolled back and the upgrade tried again from it, MIGRATIONS_LOCK_RETRIES times.

Online steps (issue 56: the money path's writes never wait on an upgrade; frozen in
`prizeflow_runtime.schema_history.online_0001`): a revision that indexes a table the services write builds it with
`create_index_concurrently` (CREATE INDEX CONCURRENTLY, outside the revision's
transaction, a leftover invalid build dropped first, so a retry finishes it), drops one with
`drop_index_concurrently`, and adds a CHECK or FOREIGN KEY as `NOT VALID` in its transaction and proves the rows
with `validate_constraint` after it (a SHARE UPDATE EXCLUSIVE scan, which writes do not wait on).
tests/migrations/test_online_migrations.py holds every revision after the baseline release to that, and an upgrade
over a table seeded at scale to never make a write wait longer than its lock timeout."""

from __future__ import annotations

import re
from typing import Any

from prizeflow_runtime.schema_compat import PHASES_TABLE, Phase

# Defaults of the migrations' session limits (env vars above), in milliseconds.
MIGRATIONS_LOCK_TIMEOUT_MS = 5_000
MIGRATIONS_STATEMENT_TIMEOUT_MS = 600_000  # below the migrations Job's 15 min deadline: it fails, not gets killed
MIGRATIONS_LOCK_RETRIES = 5
_LOCK_NOT_AVAILABLE = "55P03"

PHASES_DDL = f"""
    CREATE TABLE IF NOT EXISTS {PHASES_TABLE} (
        revision VARCHAR(64) PRIMARY KEY,
        down_revision VARCHAR(64),
        phase VARCHAR(16) NOT NULL CONSTRAINT {PHASES_TABLE}_phase CHECK (phase IN ('expand', 'contract')),
        recorded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
    )"""
_REVISION_ID = re.compile(r"[A-Za-z0-9_]{1,64}")


def run_alembic_env(target_metadata: Any = None) -> None:
    """The body of every service's `migrations/env.py`: online migrations over asyncpg from DATABASE_URL.

    Offline mode (SQL script output) is supported too, for DBAs who review DDL before it runs (the phases are
    recorded in the script as well). With MIGRATIONS_RUNTIME_ROLE set, the role the service runs as is granted the
    use of the data after the revisions (`grant_runtime_role`; the role is checked before the first one): the owner
    migrates, the service only reads and writes rows.
    """
    import asyncio
    import os
    import sys

    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    from prizeflow_runtime.settings import async_database_url

    # Only the database URL: a migrations job needs no other setting of its service (no identity, no Kafka).
    url = async_database_url(os.environ.get("DATABASE_URL") or context.config.get_main_option("sqlalchemy.url") or "")

    if context.is_offline_mode():
        # A script needs the dialect only: without a URL, PostgreSQL's.
        context.configure(
            url=url or None,
            dialect_name=None if url else "postgresql",
            target_metadata=target_metadata,
            literal_binds=True,
            on_version_apply=record_phase,
        )
        with context.begin_transaction():
            context.execute(PHASES_DDL)
            context.run_migrations()
        return

    runtime_role = os.environ.get("MIGRATIONS_RUNTIME_ROLE", "").strip()

    def run(connection: Any) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            on_version_apply=record_phase,
            transaction_per_migration=True,  # no lock a revision takes outlives it (the module's docstring)
        )
        if runtime_role:  # before any revision: a wrong role changes nothing
            check_runtime_role(connection, runtime_role)
        with context.begin_transaction():
            context.execute(PHASES_DDL)
            context.run_migrations()
            if runtime_role:
                grant_runtime_role(connection, runtime_role)

    async def main() -> None:
        engine = create_async_engine(url, connect_args={"server_settings": migration_session_settings(os.environ)})
        retries = _env_int(os.environ, "MIGRATIONS_LOCK_RETRIES", MIGRATIONS_LOCK_RETRIES)
        try:
            for attempt in range(retries + 1):
                conn = await _connect_patiently(engine)
                try:
                    await conn.run_sync(run)
                    await conn.commit()
                    return
                except Exception as err:
                    if attempt == retries or not _lost_lock_wait(err):
                        raise
                    note = f"migrations: a lock wait passed lock_timeout; rolled back, retrying ({attempt + 1})"
                    print(note, file=sys.stderr)  # noqa: T201 - a command's progress
                finally:
                    await conn.close()
                await asyncio.sleep(min(2**attempt, 30))
        finally:
            await engine.dispose()

    asyncio.run(main())


def _env_int(environ: Any, name: str, default: int) -> int:
    raw = str(environ.get(name, "")).strip()
    if not raw:
        return default
    value = int(raw)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value}")
    return value


def migration_session_settings(environ: Any) -> dict[str, str]:
    """The migrations' session limits (ms; 0 = none): MIGRATIONS_LOCK_TIMEOUT_MS, MIGRATIONS_STATEMENT_TIMEOUT_MS.
    No idle-in-transaction limit: the migrations' transaction is only ever idle between its own statements."""
    statement_ms = _env_int(environ, "MIGRATIONS_STATEMENT_TIMEOUT_MS", MIGRATIONS_STATEMENT_TIMEOUT_MS)
    return {
        "lock_timeout": str(_env_int(environ, "MIGRATIONS_LOCK_TIMEOUT_MS", MIGRATIONS_LOCK_TIMEOUT_MS)),
        "statement_timeout": str(statement_ms),
        "idle_in_transaction_session_timeout": "0",
    }


def _lost_lock_wait(err: BaseException) -> bool:
    """`lock_not_available` (55P03) anywhere in the chain: the upgrade rolled back whole, so it may run again."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return False


def record_phase(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
    """Alembic's `on_version_apply` (arguments by keyword): an applied (or stamped) revision's phase goes into
    `prizeflow_schema_phases`, a downgraded one leaves it, in the migration's transaction. A revision without a valid
    `phase` stops the upgrade: a service could not judge a database that went through it. The SQL is literal
    (offline mode renders it too): the revision ids are checked against `_REVISION_ID`, the phase is a `Phase`."""
    script = step.up_revision
    revision = str(script.revision)
    if not _REVISION_ID.fullmatch(revision):
        raise ValueError(f"revision id {revision!r} is not [A-Za-z0-9_]{{1,64}}")
    if not step.is_upgrade:
        ctx.execute(f"DELETE FROM {PHASES_TABLE} WHERE revision = '{revision}'")  # noqa: S608 - checked id
        return
    phase = getattr(script.module, "phase", None)
    if phase not in set(Phase):
        raise ValueError(f'revision {revision} declares no phase (module-level `phase = "expand"` or "contract")')
    down = script.down_revision
    if isinstance(down, tuple | list):
        raise ValueError(f"revision {revision} merges {down}: a service's migrations are one chain")
    if down is not None and not _REVISION_ID.fullmatch(str(down)):
        raise ValueError(f"down_revision {down!r} of {revision} is not [A-Za-z0-9_]{{1,64}}")
    down_sql = "NULL" if down is None else f"'{down}'"
    ctx.execute(
        f"INSERT INTO {PHASES_TABLE} (revision, down_revision, phase) VALUES ('{revision}', {down_sql}, '{phase}') "  # noqa: S608 - checked ids, a Phase
        "ON CONFLICT (revision) DO UPDATE SET down_revision = EXCLUDED.down_revision, phase = EXCLUDED.phase"
    )


# The schemas the migrating role owns (directly or as a member, e.g. `public` through pg_database_owner), not the
# system ones.
_OWN_SCHEMAS = """
    SELECT nspname FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
      AND pg_has_role(current_user, nspowner, 'MEMBER')
    ORDER BY 1"""
# Tables only the migrating role (through the inbox maintenance function, or the migrations themselves) may write.
_MAINTENANCE_TABLES = """
    SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname IN ('inbox_forgotten', 'inbox_legacy_sealed', 'prizeflow_schema_phases') AND c.relkind = 'r'
      AND pg_has_role(current_user, n.nspowner, 'MEMBER')
    ORDER BY 1"""
_ROLE_NAME = re.compile(r"[a-z_][a-z0-9_$]{0,62}")


def check_runtime_role(connection: Any, role: str) -> None:
    """MIGRATIONS_RUNTIME_ROLE is a plain role name, exists, and does not act as the owner (not the owner, not a
    member of it, not a superuser). Checked before any revision runs: a wrong role changes nothing."""
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


def grant_runtime_role(connection: Any, role: str) -> None:
    """Let `role` (the running service's login, not the owner) use the data the migrations made, and nothing more.

    CONNECT on the database; in every non-system schema the migrating role owns: USAGE, SELECT/INSERT/UPDATE/DELETE
    on its tables and USAGE/SELECT on its sequences; the same by default on what the migrating role creates later
    there (a schema the runtime role owns, like the dev sandbox rail's, is left alone). No CREATE,
    no TRUNCATE, no ownership: the runtime role cannot disable a trigger, drop a constraint or a table, so the
    append-only and state-machine triggers hold against a compromised service. `connection` is a SQLAlchemy
    connection, after the revisions (each committed on its own): the grants commit together; idempotent, so a Job
    run again grants what a failed one did not.
    """
    from sqlalchemy import text

    check_runtime_role(connection, role)
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
    # The schema's phases are the migrations' record: a runtime role that could rewrite them could make its own
    # service serve a schema it cannot run against.
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
