"""The admin audit, kept (frozen step: prizeflow_runtime.schema_history); rounds found by correlation id.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0006"
down_revision = "0005"
phase = "expand"
branch_labels = None
depends_on = None

# The timeline of a flow (`GET /admin/timeline/{correlation_id}`) starts from its round.
_UP = ["CREATE INDEX rounds_by_correlation ON rounds (correlation_id)"]
_DOWN = ["DROP INDEX rounds_by_correlation"]


def upgrade() -> None:
    step.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    step.downgrade(op)
