"""Placeholder: verified players re-screened when the sanctions lists change (filled by its helper).

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
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
