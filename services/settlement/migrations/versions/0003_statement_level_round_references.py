"""Round references checked once per statement instead of once per row.

Every settled round writes about a dozen child rows (results, allocations, fees, transitions); with foreign
keys each one ran its own `SELECT 1 FROM rounds ... FOR KEY SHARE`, which measured at 10 us of PostgreSQL
CPU per row, about half of all the database work of settling a round. The same guarantee is kept this way:

- an AFTER INSERT trigger per child table, FOR EACH STATEMENT over the inserted rows (a transition table),
  refuses the statement if any row names a round that does not exist (SQLSTATE 23503, as a foreign key);
- a child row's round_id never changes (BEFORE UPDATE OF round_id refuses it);
- a round is never deleted or truncated, and its round_id never changes (triggers on `rounds`), so a
  round that existed when a child row was checked still exists when the transaction commits: no row lock
  on the round is needed for that, which is what the per-row key-share lock of a foreign key was for.

round_disputes (rare) keeps its foreign key.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
phase = "expand"
branch_labels = None
depends_on = None

CHILDREN = ("round_entries", "round_results", "round_transitions", "round_allocations", "round_fees")

FUNCTIONS = (
    """
    CREATE FUNCTION settlement_rows_have_a_round() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing text;
    BEGIN
        SELECT i.round_id INTO missing
        FROM (SELECT DISTINCT round_id FROM inserted) AS i
        WHERE NOT EXISTS (SELECT 1 FROM rounds AS r WHERE r.round_id = i.round_id)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'insert into % refers to round %, which does not exist', TG_TABLE_NAME, missing
                USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION settlement_round_id_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%.round_id cannot change (% to %)', TG_TABLE_NAME, OLD.round_id, NEW.round_id
            USING ERRCODE = 'integrity_constraint_violation', TABLE = TG_TABLE_NAME;
    END $$
    """,
    """
    CREATE FUNCTION settlement_rounds_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'rounds are never deleted (% on %)', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation', TABLE = TG_TABLE_NAME;
    END $$
    """,
)


def upgrade() -> None:
    for statement in FUNCTIONS:
        op.execute(statement)
    op.execute(
        "CREATE TRIGGER rounds_never_deleted BEFORE DELETE ON rounds "
        "FOR EACH ROW EXECUTE FUNCTION settlement_rounds_are_kept()"
    )
    op.execute(
        "CREATE TRIGGER rounds_never_truncated BEFORE TRUNCATE ON rounds "
        "FOR EACH STATEMENT EXECUTE FUNCTION settlement_rounds_are_kept()"
    )
    op.execute(
        "CREATE TRIGGER rounds_round_id_fixed BEFORE UPDATE OF round_id ON rounds FOR EACH ROW "
        "WHEN (OLD.round_id IS DISTINCT FROM NEW.round_id) EXECUTE FUNCTION settlement_round_id_is_fixed()"
    )
    for table in CHILDREN:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_round_id_fkey")
        op.execute(
            f"CREATE TRIGGER {table}_round_exists AFTER INSERT ON {table} REFERENCING NEW TABLE AS inserted "
            "FOR EACH STATEMENT EXECUTE FUNCTION settlement_rows_have_a_round()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_round_id_fixed BEFORE UPDATE OF round_id ON {table} FOR EACH ROW "
            "WHEN (OLD.round_id IS DISTINCT FROM NEW.round_id) EXECUTE FUNCTION settlement_round_id_is_fixed()"
        )


def downgrade() -> None:
    for table in CHILDREN:
        op.execute(f"DROP TRIGGER {table}_round_id_fixed ON {table}")
        op.execute(f"DROP TRIGGER {table}_round_exists ON {table}")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_round_id_fkey "
            "FOREIGN KEY (round_id) REFERENCES rounds (round_id)"
        )
    for trigger in ("rounds_round_id_fixed", "rounds_never_truncated", "rounds_never_deleted"):
        op.execute(f"DROP TRIGGER {trigger} ON rounds")
    for function in ("settlement_rounds_are_kept", "settlement_round_id_is_fixed", "settlement_rows_have_a_round"):
        op.execute(f"DROP FUNCTION {function}()")
