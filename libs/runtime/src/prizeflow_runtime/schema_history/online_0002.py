"""Online steps, second set (issue 56): frozen like `online_0001` (a revision imports them; a change is a new module).

- `update_in_id_ranges`: an UPDATE of every row of a table the services write, a range of ids at a time, each range
  its own transaction (Alembic's `autocommit_block`): row locks on one range for one statement, never the table's
  writes for the whole rewrite. It commits what the revision did before it, so what precedes it must be safe to run
  again; the UPDATE itself must leave rows already right unwritten (its `condition` says which are not).
"""

from __future__ import annotations


def update_in_id_ranges(table: str, assignment: str, condition: str, *, rows: int = 5_000) -> None:
    """`UPDATE <table> SET <assignment> WHERE <condition>` over the table's text ids in ascending ranges of `rows`,
    each range committed on its own. Offline (SQL script) mode renders one statement over the whole table: a script
    is read, not run at scale."""
    from alembic import op
    from sqlalchemy import text

    from prizeflow_runtime.schema_history.online_0001 import _check_name

    _check_name(table)
    # The table a plain identifier (checked), the assignment and condition the revision's own constants.
    update = f"UPDATE {table} SET {assignment} WHERE ({condition})"  # noqa: S608
    with op.get_context().autocommit_block():
        if op.get_context().as_sql:
            op.execute(update)
            return
        bind = op.get_bind()
        first_ids = f"SELECT id FROM {table} WHERE id > :after ORDER BY id LIMIT :n"  # noqa: S608
        next_range = text(f"SELECT max(id) FROM ({first_ids}) AS r")  # noqa: S608
        in_range = text(f"{update} AND id > :after AND id <= :upto")
        after = ""
        while (upto := bind.execute(next_range, {"after": after, "n": rows}).scalar()) is not None:
            bind.execute(in_range, {"after": after, "upto": upto})
            after = upto


__all__ = ["update_in_id_ranges"]
