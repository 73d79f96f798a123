"""Operations: the admin audit kept (frozen messaging step 4); the ledger read by flow; two-person corrections.

- `admin_audit` (prizeflow_runtime.schema_history.messaging_0004_admin_audit).
- `ledger_transfers.correlation_id`: the flow a transfer belongs to (NULL for transfers written before it), and
  the indexes that find a flow's transfers, claims, top-ups and held rounds.
- `ledger_corrections`: a compensating transfer proposed by one person and approved by another. The database
  holds the rules that matter: two different people (CHECK approved_by <> proposed_by), one correction per
  reference, a positive amount, two distinct existing accounts in the correction's asset, applied exactly when
  its transfer exists and matches it, and a decided correction never changes again (trigger). Never deleted.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history import messaging_0004_admin_audit as step

revision = "0007"
down_revision = "0006"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    "ALTER TABLE ledger_transfers ADD COLUMN correlation_id text "
    "CONSTRAINT ledger_transfers_correlation_id_length CHECK (char_length(correlation_id) BETWEEN 1 AND 128)",
    "CREATE INDEX ledger_transfers_by_correlation ON ledger_transfers (correlation_id, seq) "
    "WHERE correlation_id IS NOT NULL",
    "CREATE INDEX claims_by_correlation ON claims (correlation_id)",
    "CREATE INDEX top_ups_by_correlation ON top_ups (correlation_id)",
    "CREATE INDEX held_allocations_by_correlation ON held_allocations ((event->>'correlationid'))",
    """
    CREATE TABLE ledger_corrections (
        id text PRIMARY KEY,
        reference text NOT NULL CONSTRAINT ledger_corrections_one_per_reference UNIQUE,
        debit_account_id uuid NOT NULL REFERENCES ledger_accounts (id),
        credit_account_id uuid NOT NULL REFERENCES ledger_accounts (id),
        asset text NOT NULL,
        amount bigint NOT NULL CONSTRAINT ledger_corrections_amount_positive CHECK (amount > 0),
        reason text NOT NULL CONSTRAINT ledger_corrections_reason CHECK (char_length(reason) BETWEEN 1 AND 1000),
        corrects_transfer_id uuid REFERENCES ledger_transfers (id),
        correlation_id text NOT NULL,
        status text NOT NULL CONSTRAINT ledger_corrections_status CHECK (status IN ('proposed', 'applied', 'rejected')),
        proposed_by text NOT NULL,
        proposed_at timestamptz NOT NULL,
        approved_by text,
        approved_at timestamptz,
        rejected_by text,
        rejected_at timestamptz,
        decision_reason text CONSTRAINT ledger_corrections_decision_reason CHECK (char_length(decision_reason) <= 1000),
        transfer_id uuid CONSTRAINT ledger_corrections_one_transfer UNIQUE REFERENCES ledger_transfers (id),
        CONSTRAINT ledger_corrections_two_people CHECK (approved_by <> proposed_by),
        CONSTRAINT ledger_corrections_distinct_accounts CHECK (debit_account_id <> credit_account_id),
        CONSTRAINT ledger_corrections_applied_iff_approved CHECK (
            (status = 'applied') = (approved_by IS NOT NULL)
            AND (approved_by IS NULL) = (approved_at IS NULL)
            AND (status = 'applied') = (transfer_id IS NOT NULL)),
        CONSTRAINT ledger_corrections_rejected_iff_rejecter CHECK (
            (status = 'rejected') = (rejected_by IS NOT NULL)
            AND (rejected_by IS NULL) = (rejected_at IS NULL)
            AND (status <> 'rejected' OR decision_reason IS NOT NULL))
    )
    """,
    "CREATE INDEX ledger_corrections_open ON ledger_corrections (proposed_at) WHERE status = 'proposed'",
    "CREATE INDEX ledger_corrections_by_correlation ON ledger_corrections (correlation_id)",
    # Both accounts in the correction's asset; a decided correction is final and its proposal never changes;
    # an applied one is applied by its own transfer (kind correction, same accounts and amount); none is deleted.
    """
    CREATE FUNCTION ledger_corrections_rules() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'ledger corrections are never deleted'
                USING ERRCODE = 'restrict_violation', CONSTRAINT = 'ledger_corrections_rules';
        END IF;
        IF TG_OP = 'INSERT' THEN
            IF NEW.status <> 'proposed' THEN
                RAISE EXCEPTION 'a correction starts proposed'
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_rules';
            END IF;
            IF EXISTS (SELECT 1 FROM ledger_accounts a
                       WHERE a.id IN (NEW.debit_account_id, NEW.credit_account_id) AND a.asset <> NEW.asset) THEN
                RAISE EXCEPTION 'correction %: both accounts must be in %', NEW.id, NEW.asset
                    USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_rules';
            END IF;
            RETURN NEW;
        END IF;
        IF OLD.status <> 'proposed' THEN
            RAISE EXCEPTION 'correction % is %: it never changes again', OLD.id, OLD.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_rules';
        END IF;
        IF (NEW.id, NEW.reference, NEW.debit_account_id, NEW.credit_account_id, NEW.asset, NEW.amount, NEW.reason,
            NEW.corrects_transfer_id, NEW.correlation_id, NEW.proposed_by, NEW.proposed_at)
           IS DISTINCT FROM
           (OLD.id, OLD.reference, OLD.debit_account_id, OLD.credit_account_id, OLD.asset, OLD.amount, OLD.reason,
            OLD.corrects_transfer_id, OLD.correlation_id, OLD.proposed_by, OLD.proposed_at) THEN
            RAISE EXCEPTION 'correction %: a proposal is decided as it was proposed', OLD.id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_rules';
        END IF;
        IF NEW.status = 'applied' AND NOT EXISTS (
            SELECT 1 FROM ledger_transfers t
            WHERE t.id = NEW.transfer_id AND t.kind = 'correction' AND t.flags & 7 = 0
              AND t.debit_account_id = NEW.debit_account_id AND t.credit_account_id = NEW.credit_account_id
              AND t.amount = NEW.amount AND t.asset = NEW.asset) THEN
            RAISE EXCEPTION 'correction %: applied only by its own correction transfer', OLD.id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_rules';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER ledger_corrections_rules BEFORE INSERT OR UPDATE OR DELETE ON ledger_corrections
    FOR EACH ROW EXECUTE FUNCTION ledger_corrections_rules()
    """,
]

_DOWN = [
    "DROP TABLE ledger_corrections",
    "DROP FUNCTION ledger_corrections_rules()",
    "DROP INDEX held_allocations_by_correlation",
    "DROP INDEX top_ups_by_correlation",
    "DROP INDEX claims_by_correlation",
    "DROP INDEX ledger_transfers_by_correlation",
    "ALTER TABLE ledger_transfers DROP COLUMN correlation_id",
]


def upgrade() -> None:
    step.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    step.downgrade(op)
