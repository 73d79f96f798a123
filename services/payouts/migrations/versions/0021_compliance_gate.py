"""(placeholder: filled by the issue-35 work on compliance_gate)

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
phase = "expand"
branch_labels = None
depends_on = None

_UP: list[str] = []

_DOWN: list[str] = []


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
