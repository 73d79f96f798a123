"""Refusals are remembered: inbox digest and outcome, dead_letters (frozen step: prizeflow_runtime.schema_history).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0003_refusals as step

revision = "0003"
down_revision = "0002"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    step.upgrade(op)


def downgrade() -> None:
    step.downgrade(op)
