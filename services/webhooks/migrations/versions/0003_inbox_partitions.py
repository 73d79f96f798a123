"""The inbox partitioned by event time and kept for the dedup horizon (frozen step: prizeflow_runtime.schema_history).

The existing inbox is renamed `inbox_legacy`, not copied, and still consulted by the claim: no dedup row is lost.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0005_inbox_partitions as step

revision = "0003"
down_revision = "0002"
phase = "contract"
branch_labels = None
depends_on = None


def upgrade() -> None:
    step.upgrade(op)


def downgrade() -> None:
    step.downgrade(op)
