"""A round's terms never change once it exists.

The terms are what RoundOpened fixed: `spec` and the columns derived from it (competition, game, organizer,
prize source, asset, opened_at) and the round's correlation id. Settlement never updates them (a second
RoundOpened with other terms is refused), and the service caches the validated spec per round on that
promise (`SpecCache`); this trigger makes it a rule of the database, so no other writer can break it.
`BEFORE UPDATE OF` those columns: the hot path's UPDATE sets none of them and never fires it.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
phase = "expand"
branch_labels = None
depends_on = None

TERMS = ("spec", "competition_id", "game_id", "organizer_id", "correlation_id", "prize_source", "asset", "opened_at")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION settlement_round_terms_are_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'the terms of round % cannot change once it is opened', OLD.round_id
                USING ERRCODE = 'integrity_constraint_violation', TABLE = TG_TABLE_NAME;
        END $$
        """
    )
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in TERMS)
    op.execute(
        f"CREATE TRIGGER rounds_terms_fixed BEFORE UPDATE OF {', '.join(TERMS)} ON rounds FOR EACH ROW "
        f"WHEN ({changed}) EXECUTE FUNCTION settlement_round_terms_are_fixed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER rounds_terms_fixed ON rounds")
    op.execute("DROP FUNCTION settlement_round_terms_are_fixed()")
