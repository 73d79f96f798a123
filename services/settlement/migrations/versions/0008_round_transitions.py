"""A round moves only along the round state machine, in PostgreSQL too: a change of `rounds.state` must follow a
path of `prizeflow_settlement.domain.round.TRANSITIONS` (frozen here; a unit test holds the two equal), so a settled
or voided round never leaves its state, whatever SQL asks.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
phase = "expand"
branch_labels = None
depends_on = None

# (from, to): TRANSITIONS as of this revision.
ALLOWED = (
    ("open", "closed"),
    ("open", "voided"),
    ("closed", "resolved"),
    ("closed", "voided"),
    ("resolved", "settled"),
    ("resolved", "voided"),
)


def reachable(pairs: tuple[tuple[str, str], ...]) -> set[tuple[str, str]]:
    """Every (from, to) a path of allowed moves joins: one save may write several steps at once (a round closed,
    resolved and settled by one poll of the game's events); a final state has no way out, so none here either."""
    closure = set(pairs)
    while True:
        more = {(a, d) for a, b in closure for c, d in closure if b == c} - closure
        if not more:
            return closure
        closure |= more


_PAIRS = ", ".join(f"('{a}', '{b}')" for a, b in sorted(reachable(ALLOWED)))


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION round_transition_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (OLD.state, NEW.state) NOT IN ({_PAIRS}) THEN
                RAISE EXCEPTION 'round %: % -> % is not a transition of the round state machine',
                    OLD.round_id, OLD.state, NEW.state USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER rounds_transition_allowed BEFORE UPDATE OF state ON rounds "
        "FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION round_transition_allowed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER rounds_transition_allowed ON rounds")
    op.execute("DROP FUNCTION round_transition_allowed()")
