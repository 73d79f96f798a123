"""The admin audit, kept (frozen step: prizeflow_runtime.schema_history); payouts and refused requests found by
correlation id.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0007"
down_revision = "0006"
phase = "expand"
branch_labels = None
depends_on = None

# The timeline of a flow (`GET /admin/timeline/{correlation_id}`) finds its payouts.
_UP = [
    "CREATE INDEX payouts_by_correlation ON payouts (correlation_id)",
    "CREATE INDEX payout_request_refusals_by_correlation ON payout_request_refusals (correlation_id)",
    "CREATE INDEX provider_events_by_payout ON provider_events (payout_id) WHERE payout_id IS NOT NULL",
]
_DOWN = [
    "DROP INDEX provider_events_by_payout",
    "DROP INDEX payout_request_refusals_by_correlation",
    "DROP INDEX payouts_by_correlation",
]


def upgrade() -> None:
    step.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    step.downgrade(op)
