"""Online steps for revisions that change a table the services write (issue 56): the money path's writes never wait
on them. Frozen like the messaging steps: a revision imports them, so what they do can never change under it
(a change is a new module, `online_0002`).

- `create_index_concurrently`: CREATE INDEX CONCURRENTLY IF NOT EXISTS, outside the revision's transaction; an
  INVALID index of that name (a build that failed) is dropped first, so the upgrade's retry finishes it.
- `drop_index_concurrently`: DROP INDEX CONCURRENTLY IF EXISTS, outside the revision's transaction.
- `validate_constraint`: VALIDATE CONSTRAINT after a commit (the revision added it NOT VALID): SHARE UPDATE
  EXCLUSIVE, which inserts and updates do not wait on.

Each commits what the revision did before it (Alembic's `autocommit_block`), so what precedes it in a revision
must be safe to run again (a retry after a failure runs the revision from its start).
"""

from __future__ import annotations


def create_index_concurrently(name: str, definition: str) -> None:
    """`CREATE [UNIQUE] INDEX CONCURRENTLY IF NOT EXISTS <name> <definition>` (`definition`: `ON table (...) ...`,
    `unique` by prefixing it with `UNIQUE `) outside the revision's transaction: the table's writes go on while it
    builds. A build that failed before (an INVALID index of that name) is dropped first, so the upgrade's retry
    finishes it; one that succeeded is left as it is. Offline (SQL script) mode renders the same statements."""
    from alembic import op

    _check_name(name)
    unique = definition.startswith("UNIQUE ")
    body = definition.removeprefix("UNIQUE ")
    with op.get_context().autocommit_block():
        if _invalid_index(name):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX CONCURRENTLY IF NOT EXISTS {name} {body}")


def drop_index_concurrently(name: str) -> None:
    """`DROP INDEX CONCURRENTLY IF EXISTS <name>` outside the revision's transaction: no ACCESS EXCLUSIVE lock on the
    table, so its writes never queue behind the drop."""
    from alembic import op

    _check_name(name)
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def validate_constraint(table: str, name: str) -> None:
    """`ALTER TABLE <table> VALIDATE CONSTRAINT <name>` in a transaction of its own, after the revision's (which added
    it `NOT VALID` and released its brief ACCESS EXCLUSIVE lock): the scan holds SHARE UPDATE EXCLUSIVE, which the
    table's inserts and updates do not wait on."""
    from alembic import op

    _check_name(table)
    _check_name(name)
    with op.get_context().autocommit_block():
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def _invalid_index(name: str) -> bool:
    """Whether an INVALID index of that name is left by a build that failed (False offline: nothing to ask)."""
    from alembic import op
    from sqlalchemy import text

    context = op.get_context()
    if context.as_sql:
        return False
    row = (
        op.get_bind()
        .execute(
            text(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND pg_table_is_visible(c.oid)"
            ),
            {"name": name},
        )
        .first()
    )
    return bool(row and row[0])


def _check_name(name: str) -> None:
    """A plain lowercase SQL identifier (it is written into the statements)."""
    ok = 0 < len(name) <= 63 and not name[0].isdigit()
    if not ok or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in name):
        raise ValueError(f"{name!r} is not a plain SQL identifier")


__all__ = ["create_index_concurrently", "drop_index_concurrently", "validate_constraint"]
