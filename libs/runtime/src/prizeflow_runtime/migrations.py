"""Alembic helpers so each service's own migration history creates the shared messaging tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from prizeflow_runtime.db import OUTBOX_NOTIFY_DDL, inbox_table, outbox_table


def create_messaging_tables(op: Any) -> None:
    """Call from a service's first Alembic revision: outbox, inbox and the outbox notify trigger."""
    bind = op.get_bind()
    outbox_table.create(bind, checkfirst=True)
    inbox_table.create(bind, checkfirst=True)
    for ddl in OUTBOX_NOTIFY_DDL:
        bind.execute(text(ddl))


def drop_messaging_tables(op: Any) -> None:
    bind = op.get_bind()
    bind.execute(text("DROP TRIGGER IF EXISTS outbox_notify ON outbox"))
    bind.execute(text("DROP FUNCTION IF EXISTS prizeflow_outbox_notify()"))
    inbox_table.drop(bind, checkfirst=True)
    outbox_table.drop(bind, checkfirst=True)
