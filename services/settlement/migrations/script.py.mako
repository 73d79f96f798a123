"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from __future__ import annotations

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
# expand: only adds, so the previous release keeps working against it; contract: drops or renames what a released
# version stopped using, and says which (`unused_since = "<release>"`, migrations/releases.toml).
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
