"""Stellar engine leader election without collisions: one row per provider name, its lock id a unique identity.

The engine leader holds the two-key advisory lock (ENGINE_LOCK_SPACE, lock_id). Distinct provider names are
distinct rows (primary key), so they have distinct identities (unique), so distinct locks; an identity is never
reused. Before, the key was a 16-bit hash of the name, and two names could share one leader. Frozen SQL.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE stellar_engine_locks (
        provider text PRIMARY KEY,
        lock_id integer GENERATED ALWAYS AS IDENTITY CONSTRAINT stellar_engine_locks_id UNIQUE CHECK (lock_id > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]

_DOWN = ["DROP TABLE stellar_engine_locks"]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
