"""Outbox: the relay deletes published rows instead of marking them (see prizeflow_runtime.outbox).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.migrations import outbox_delete_on_publish, outbox_mark_on_publish

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    outbox_delete_on_publish(op)


def downgrade() -> None:
    outbox_mark_on_publish(op)
