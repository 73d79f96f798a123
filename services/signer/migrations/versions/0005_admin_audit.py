"""The admin audit, kept (frozen step: prizeflow_runtime.schema_history).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0005"
down_revision = "0004"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    step.upgrade(op)


def downgrade() -> None:
    step.downgrade(op)
