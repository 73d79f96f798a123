"""Outbox: the relay deletes published rows instead of marking them (frozen step: prizeflow_runtime.schema_history).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0002_outbox_delete_on_publish as step

revision = "0003"
down_revision = "0002"
phase = "contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    step.upgrade(op)


def downgrade() -> None:
    step.downgrade(op)
