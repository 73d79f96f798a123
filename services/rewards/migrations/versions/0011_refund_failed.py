"""A refund that fails (or is cancelled) after it was reported proceeding gives back what it took: adjustment kind
`refund_failed`, which reverses the refund of the same ref as `dispute_won` reverses its dispute.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE top_up_adjustments DROP CONSTRAINT top_up_adjustments_kind")
    op.execute(
        "ALTER TABLE top_up_adjustments ADD CONSTRAINT top_up_adjustments_kind "
        "CHECK (kind IN ('refund', 'dispute', 'dispute_won', 'refund_failed'))"
    )
    # A reversal only credits (back to the wallet, or clearing what was owed); what it reverses only debits.
    op.execute("ALTER TABLE top_up_adjustments DROP CONSTRAINT top_up_adjustments_legs")
    op.execute(
        "ALTER TABLE top_up_adjustments ADD CONSTRAINT top_up_adjustments_legs CHECK ("
        "(kind IN ('dispute_won', 'refund_failed') AND debited = 0) "
        "OR (kind NOT IN ('dispute_won', 'refund_failed') AND credited = 0))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM top_up_adjustments WHERE kind = 'refund_failed' AND status = 'pending'")
    op.execute("ALTER TABLE top_up_adjustments DROP CONSTRAINT top_up_adjustments_legs")
    op.execute(
        "ALTER TABLE top_up_adjustments ADD CONSTRAINT top_up_adjustments_legs CHECK ("
        "(kind = 'dispute_won' AND debited = 0) OR (kind <> 'dispute_won' AND credited = 0))"
    )
    op.execute("ALTER TABLE top_up_adjustments DROP CONSTRAINT top_up_adjustments_kind")
    op.execute(
        "ALTER TABLE top_up_adjustments ADD CONSTRAINT top_up_adjustments_kind "
        "CHECK (kind IN ('refund', 'dispute', 'dispute_won'))"
    )
