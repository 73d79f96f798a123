"""Placeholder: one destination key for every spelling of a destination (filled by its helper).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
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
