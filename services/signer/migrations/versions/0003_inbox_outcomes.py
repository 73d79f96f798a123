"""Refusals are remembered: inbox digest and outcome, dead_letters (see prizeflow_runtime.dead_letters).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.migrations import inbox_outcomes, inbox_outcomes_downgrade

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inbox_outcomes(op)


def downgrade() -> None:
    inbox_outcomes_downgrade(op)
