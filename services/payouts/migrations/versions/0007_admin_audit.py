"""The admin audit, kept (frozen step: prizeflow_runtime.schema_history); payouts found by correlation id.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The timeline of a flow (`GET /admin/timeline/{correlation_id}`) finds its payouts.
_UP = ["CREATE INDEX payouts_by_correlation ON payouts (correlation_id)"]
_DOWN = ["DROP INDEX payouts_by_correlation"]


def upgrade() -> None:
    step.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    step.downgrade(op)
