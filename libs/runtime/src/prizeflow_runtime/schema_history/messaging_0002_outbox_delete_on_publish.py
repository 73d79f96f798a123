"""Messaging step 2: the relay deletes published outbox rows instead of marking them.

Rows already published are removed, rows still pending stay and go out as before. A no-op on an outbox
that has no `published_at` (one created, before this history was frozen, by a first revision that already
wrote the later shape). Frozen: never edit; add a step instead."""

from __future__ import annotations

from typing import Any

_MARKED = (
    "SELECT 1 FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND table_name = 'outbox' AND column_name = 'published_at'"
)


def upgrade(op: Any) -> None:
    bind = op.get_bind()
    if bind.exec_driver_sql(_MARKED).first() is None:
        return
    op.execute("DELETE FROM outbox WHERE published_at IS NOT NULL")
    op.execute("DROP INDEX IF EXISTS outbox_unpublished")
    op.execute("ALTER TABLE outbox DROP COLUMN published_at")


def downgrade(op: Any) -> None:
    """Every row left in the outbox is still unpublished."""
    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS published_at TIMESTAMP WITH TIME ZONE")
    op.execute("CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL")
