"""Payout routes may pay only some amounts (`PayoutRoute.amounts`: a rail of fixed prices such as Telegram gifts):
rewards refuses a claim of any other amount up front, before money is reserved.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """ALTER TABLE payout_routes ADD COLUMN amounts bigint[]
           CHECK (amounts IS NULL OR (cardinality(amounts) BETWEEN 1 AND 100 AND 0 < ALL (amounts)))"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE payout_routes DROP COLUMN amounts")
