"""Messaging step 3: refusals are remembered. The inbox keeps each event's digest and its outcome (applied
or refused); `dead_letters` keeps every refused record with why, its bytes and what became of it.

Tolerates a database whose first revision already wrote these (before this history was frozen).
Frozen: never edit; add a step instead."""

from __future__ import annotations

from typing import Any

UPGRADE = (
    "ALTER TABLE inbox ADD COLUMN IF NOT EXISTS digest BYTEA",
    "ALTER TABLE inbox ADD COLUMN IF NOT EXISTS outcome VARCHAR(16) NOT NULL DEFAULT 'applied' "
    "CONSTRAINT inbox_outcome CHECK (outcome IN ('applied', 'refused'))",
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        consumer VARCHAR(128) NOT NULL,
        digest BYTEA NOT NULL,
        event_id UUID,
        event_type VARCHAR(255),
        correlation_id VARCHAR(128),
        topic VARCHAR(255) NOT NULL,
        partition INTEGER NOT NULL,
        "offset" BIGINT NOT NULL,
        key BYTEA,
        value BYTEA NOT NULL,
        headers JSONB NOT NULL,
        reason VARCHAR(64) NOT NULL,
        detail VARCHAR(4000) NOT NULL,
        error_type VARCHAR(128) NOT NULL,
        attempts INTEGER NOT NULL,
        status VARCHAR(16) NOT NULL DEFAULT 'open'
            CONSTRAINT dead_letters_status CHECK (status IN ('open', 'redriven', 'discarded')),
        created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),
        decided_at TIMESTAMP WITH TIME ZONE,
        decided_by VARCHAR(128),
        decision_reason VARCHAR(1000),
        CONSTRAINT dead_letters_once UNIQUE (consumer, digest)
    )
    """,
    "CREATE INDEX IF NOT EXISTS dead_letters_open ON dead_letters (consumer, id) WHERE status = 'open'",
)

DOWNGRADE = (
    "DROP TABLE IF EXISTS dead_letters",
    "DELETE FROM inbox WHERE outcome = 'refused'",  # before this step a refusal left no inbox row
    "ALTER TABLE inbox DROP COLUMN IF EXISTS outcome",
    "ALTER TABLE inbox DROP COLUMN IF EXISTS digest",
)


def upgrade(op: Any) -> None:
    for ddl in UPGRADE:
        op.execute(ddl)


def downgrade(op: Any) -> None:
    for ddl in DOWNGRADE:
        op.execute(ddl)
