"""Messaging tables, first shape: an outbox whose relay marks rows `published_at`, an inbox of applied event
ids, and the NOTIFY trigger that wakes the relay. Frozen: never edit; add a step instead."""

from __future__ import annotations

from typing import Any

UPGRADE = (
    """
    CREATE TABLE IF NOT EXISTS outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id UUID NOT NULL UNIQUE,
        topic VARCHAR(255) NOT NULL,
        key BYTEA NOT NULL,
        headers JSONB NOT NULL,
        payload BYTEA NOT NULL,
        event_type VARCHAR(255) NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        published_at TIMESTAMP WITH TIME ZONE
    )
    """,
    "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
    """
    CREATE TABLE IF NOT EXISTS inbox (
        consumer VARCHAR(128) NOT NULL,
        event_id UUID NOT NULL,
        topic VARCHAR(255) NOT NULL,
        partition INTEGER NOT NULL,
        "offset" BIGINT NOT NULL,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, event_id)
    )
    """,
    """
    CREATE OR REPLACE FUNCTION prizeflow_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('prizeflow_outbox', ''); RETURN NULL; END $$
    """,
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION prizeflow_outbox_notify()
    """,
)

DOWNGRADE = (
    "DROP TRIGGER IF EXISTS outbox_notify ON outbox",
    "DROP FUNCTION IF EXISTS prizeflow_outbox_notify()",
    "DROP TABLE IF EXISTS inbox",
    "DROP TABLE IF EXISTS outbox",
)


def upgrade(op: Any) -> None:
    for ddl in UPGRADE:
        op.execute(ddl)


def downgrade(op: Any) -> None:
    for ddl in DOWNGRADE:
        op.execute(ddl)
