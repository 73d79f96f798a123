"""Messaging tables (frozen steps 1-3) and `deliveries`: every accepted provider callback, once per
(provider, provider event id), with its raw body and the event (CloudEvent) it was published as.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import (
    messaging_0001,
    messaging_0002_outbox_delete_on_publish,
    messaging_0003_refusals,
)

revision = "0001"
down_revision = None
phase = "expand"
branch_labels = None
depends_on = None

DDL = [
    r"""
    CREATE TABLE deliveries (
        id                   bigint       GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        provider             varchar(64)  NOT NULL CHECK (provider ~ '^[a-z][a-z0-9_]{0,63}$'),
        provider_type        varchar(32)  NOT NULL,
        provider_event_id    varchar(255) NOT NULL CHECK (provider_event_id ~ '^[\x21-\x7e]{1,255}$'),
        kind                 varchar(128) NOT NULL,
        outcome              varchar(16)  NOT NULL CONSTRAINT deliveries_outcome
                                 CHECK (outcome IN ('published', 'ignored')),
        ignored_reason       varchar(64),
        event_type           varchar(255),
        event                jsonb,
        correlation_id       varchar(128) NOT NULL,
        correlation_generated boolean     NOT NULL,
        confirmed            boolean      NOT NULL,
        body                 bytea        NOT NULL CHECK (octet_length(body) <= 1048576),
        body_sha256          char(64)     NOT NULL CHECK (body_sha256 ~ '^[0-9a-f]{64}$'),
        signature_timestamp  bigint       NOT NULL CHECK (signature_timestamp > 0),
        received_at          timestamptz  NOT NULL,
        published_event_id   uuid,
        republished          integer      NOT NULL DEFAULT 0 CHECK (republished >= 0),
        last_republished_at  timestamptz,
        CONSTRAINT deliveries_once UNIQUE (provider, provider_event_id),
        CONSTRAINT deliveries_published_has_event CHECK (
            outcome <> 'published'
            OR (event_type IS NOT NULL AND event IS NOT NULL AND published_event_id IS NOT NULL)
        ),
        CONSTRAINT deliveries_ignored_has_reason CHECK (
            outcome <> 'ignored' OR (ignored_reason IS NOT NULL AND event IS NULL)
        ),
        CONSTRAINT deliveries_republished_only_published CHECK (outcome = 'published' OR republished = 0)
    )
    """,
    "CREATE INDEX deliveries_by_provider ON deliveries (provider, id)",
    "CREATE INDEX deliveries_by_outcome ON deliveries (outcome, id)",
]


def upgrade() -> None:
    messaging_0001.upgrade(op)
    messaging_0002_outbox_delete_on_publish.upgrade(op)
    messaging_0003_refusals.upgrade(op)
    for statement in DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS deliveries")
    messaging_0003_refusals.downgrade(op)
    messaging_0002_outbox_delete_on_publish.downgrade(op)
    messaging_0001.downgrade(op)
