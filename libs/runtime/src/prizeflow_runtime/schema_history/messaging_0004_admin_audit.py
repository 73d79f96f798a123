"""Messaging step 4: the admin audit is kept, queryable by correlation id. `admin_audit` holds one row per
`AdminActionRecorded` staged in the outbox, written in the same transaction (who did what to which object, why,
when, under which flow); append-only (a trigger refuses UPDATE, DELETE and TRUNCATE). Dead letters are found by
their flow's correlation id too.
Frozen: never edit; add a step instead."""

from __future__ import annotations

from typing import Any

UPGRADE = (
    """
    CREATE TABLE IF NOT EXISTS admin_audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id UUID NOT NULL CONSTRAINT admin_audit_once UNIQUE,
        action_id VARCHAR(128) NOT NULL,
        correlation_id VARCHAR(128) NOT NULL,
        service VARCHAR(64) NOT NULL,
        action VARCHAR(64) NOT NULL,
        target_type VARCHAR(64) NOT NULL,
        target_id VARCHAR(128) NOT NULL,
        actor VARCHAR(128) NOT NULL,
        actor_roles VARCHAR(64) NOT NULL,
        reason VARCHAR(1000),
        occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
        recorded_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS admin_audit_by_correlation ON admin_audit (correlation_id, occurred_at)",
    "CREATE INDEX IF NOT EXISTS dead_letters_by_correlation ON dead_letters (correlation_id) "
    "WHERE correlation_id IS NOT NULL",
    """
    CREATE OR REPLACE FUNCTION prizeflow_admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'admin_audit is append-only' USING ERRCODE = 'restrict_violation'; END $$
    """,
    "DROP TRIGGER IF EXISTS admin_audit_append_only ON admin_audit",
    """
    CREATE TRIGGER admin_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION prizeflow_admin_audit_append_only()
    """,
)

DOWNGRADE = (
    "DROP INDEX IF EXISTS dead_letters_by_correlation",
    "DROP TABLE IF EXISTS admin_audit",
    "DROP FUNCTION IF EXISTS prizeflow_admin_audit_append_only()",
)


def upgrade(op: Any) -> None:
    for ddl in UPGRADE:
        op.execute(ddl)


def downgrade(op: Any) -> None:
    for ddl in DOWNGRADE:
        op.execute(ddl)
