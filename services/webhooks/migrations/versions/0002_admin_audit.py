"""The admin audit, kept (frozen step: prizeflow_runtime.schema_history); deliveries found by correlation id.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0002"
down_revision = "0001"
phase = "expand"
branch_labels = None
depends_on = None

# The timeline of a flow (`GET /admin/timeline/{correlation_id}`) finds its deliveries.
_UP = ["CREATE INDEX deliveries_by_correlation ON deliveries (correlation_id)"]
_DOWN = ["DROP INDEX deliveries_by_correlation"]


def upgrade() -> None:
    step.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    step.downgrade(op)
