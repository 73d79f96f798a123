"""(placeholder: filled by the issue-35 work on compliance_records)

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
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
