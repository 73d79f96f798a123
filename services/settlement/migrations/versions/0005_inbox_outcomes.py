"""Refusals are remembered: inbox digest and outcome, dead_letters (see prizeflow_runtime.dead_letters).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.migrations import inbox_outcomes, inbox_outcomes_downgrade

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inbox_outcomes(op)


def downgrade() -> None:
    inbox_outcomes_downgrade(op)
