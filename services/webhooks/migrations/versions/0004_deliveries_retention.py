"""Deliveries are deleted past their retention (ADR 0008): a BRIN index finds the old ones.

Rows are appended in arrival order, so a BRIN index on `received_at` is a few pages for millions of rows.

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


def upgrade() -> None:
    op.execute("CREATE INDEX deliveries_received_brin ON deliveries USING brin (received_at)")


def downgrade() -> None:
    op.execute("DROP INDEX deliveries_received_brin")
