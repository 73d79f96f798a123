"""One live signature per payout: the last transaction signed for each payout and its upper time bound.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
phase = "expand"
branch_labels = None
depends_on = None

DDL = [
    # `signed_at_epoch` is the signer's clock when it signed (the clock its rule is decided on).
    """
    CREATE TABLE signer_payout_signatures (
        payout_id        varchar(128) PRIMARY KEY,
        tx_hash          char(64)     NOT NULL CHECK (tx_hash ~ '^[0-9a-f]{64}$'),
        max_time         bigint       NOT NULL CHECK (max_time > 0),
        request_id       varchar(128) NOT NULL,
        signed_at_epoch  bigint       NOT NULL,
        updated_at       timestamptz  NOT NULL DEFAULT now()
    )
    """,
    # The database as the last line of defence: a payout's transaction is replaced only once it can no longer
    # land (signed after its upper time bound), and rows are never deleted (that would forget a live one).
    """
    CREATE FUNCTION signer_one_live_signature() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'UPDATE' THEN
            RAISE EXCEPTION 'signer_payout_signatures: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.tx_hash <> OLD.tx_hash AND NEW.signed_at_epoch <= OLD.max_time THEN
            RAISE EXCEPTION 'payout %: transaction % can still land until %', OLD.payout_id, OLD.tx_hash,
                OLD.max_time USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    "CREATE TRIGGER signer_payout_signatures_one_live BEFORE UPDATE OR DELETE ON signer_payout_signatures "
    "FOR EACH ROW EXECUTE FUNCTION signer_one_live_signature()",
    "CREATE TRIGGER signer_payout_signatures_no_truncate BEFORE TRUNCATE ON signer_payout_signatures "
    "FOR EACH STATEMENT EXECUTE FUNCTION signer_one_live_signature()",
]


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS signer_payout_signatures")
    op.execute("DROP FUNCTION IF EXISTS signer_one_live_signature()")
