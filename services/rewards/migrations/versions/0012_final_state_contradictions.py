"""What a later word said against a final state: a payment for a top-up that expired or failed, a payout paid for a
claim whose reservation went back to the wallet, a failure or a cancel after a claim was paid. Never applied (no
money moves on it); kept here for a person (alert `PrizeflowFinalStateContradicted`), once per source event, never
rewritten or deleted.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE final_state_contradictions (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            subject text NOT NULL CHECK (subject IN ('topup', 'claim')),
            aggregate_id text NOT NULL CHECK (length(aggregate_id) BETWEEN 1 AND 200),
            state text NOT NULL CHECK (length(state) BETWEEN 1 AND 40),
            reported text NOT NULL CHECK (length(reported) BETWEEN 1 AND 40),
            source_ref text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 300),
            detail text NOT NULL CHECK (length(detail) BETWEEN 1 AND 1000),
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT final_state_contradictions_once UNIQUE (subject, aggregate_id, source_ref)
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION final_state_contradiction_kept() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'final state contradiction %: evidence is never rewritten or deleted', OLD.id
                USING ERRCODE = 'check_violation';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER final_state_contradictions_kept BEFORE UPDATE OR DELETE ON final_state_contradictions "
        "FOR EACH ROW EXECUTE FUNCTION final_state_contradiction_kept()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE final_state_contradictions")
    op.execute("DROP FUNCTION final_state_contradiction_kept()")
