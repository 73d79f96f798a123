"""Messaging tables, the append-only audit and spend tables, stored results.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0001

revision = "0001"
down_revision = None
phase = "expand"
branch_labels = None
depends_on = None

APPEND_ONLY = ("signer_audit", "signer_spend", "signer_results")

DDL = [
    """
    CREATE FUNCTION signer_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TABLE signer_audit (
        id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id      varchar(128) NOT NULL,
        event_id        uuid         NOT NULL,
        correlation_id  varchar(128) NOT NULL,
        decision        varchar(16)  NOT NULL
                        CHECK (decision IN ('signed', 'refused', 'replayed', 'external')),
        code            varchar(64),
        detail          text,
        tx_hash         char(64)     CHECK (tx_hash ~ '^[0-9a-f]{64}$'),
        source_account  varchar(56),
        signed_by       varchar(56),
        backend         varchar(16)  NOT NULL,
        amounts         jsonb        NOT NULL DEFAULT '{}',
        payout_ids      text[]       NOT NULL,
        decided_at      timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT signer_audit_signed_has_key
            CHECK (decision <> 'signed' OR (signed_by IS NOT NULL AND tx_hash IS NOT NULL)),
        CONSTRAINT signer_audit_refused_has_code CHECK (decision NOT IN ('refused', 'external') OR code IS NOT NULL)
    )
    """,
    "CREATE INDEX signer_audit_request_idx ON signer_audit (request_id, id)",
    """
    CREATE TABLE signer_results (
        request_id  varchar(128) PRIMARY KEY,
        outcome     varchar(16)  NOT NULL CHECK (outcome IN ('signed', 'refused', 'external')),
        envelope    text         NOT NULL,
        created_at  timestamptz  NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE signer_spend (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        request_id  varchar(128) NOT NULL REFERENCES signer_results (request_id) DEFERRABLE INITIALLY DEFERRED,
        asset       varchar(16)  NOT NULL,
        amount      bigint       NOT NULL CHECK (amount > 0),
        signed_at   timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT signer_spend_once UNIQUE (request_id, asset)
    )
    """,
    "CREATE INDEX signer_spend_window_idx ON signer_spend (asset, signed_at)",
]


def upgrade() -> None:
    messaging_0001.upgrade(op)
    for statement in DDL:
        op.execute(statement)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION signer_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION signer_append_only()"
        )


def downgrade() -> None:
    for table in ("signer_spend", "signer_results", "signer_audit"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS signer_append_only()")
    messaging_0001.downgrade(op)
