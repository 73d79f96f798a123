"""Ledger corrections: nobody approves a correction that moves money of their own player account.

A player id and a staff subject are the same kind of subject (one identity provider): as payouts refuse a decision
by the payout's beneficiary, the database refuses a correction applied by the owner of its player wallet or
receivable (whatever the code does).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE FUNCTION ledger_corrections_not_own_account() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status = 'applied' AND EXISTS (
            SELECT 1 FROM ledger_accounts a
            WHERE a.id IN (NEW.debit_account_id, NEW.credit_account_id)
              AND a.kind IN ('player_wallet', 'player_receivable') AND a.owner_id = NEW.approved_by) THEN
            RAISE EXCEPTION 'correction %: % approves money of their own account', NEW.id, NEW.approved_by
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_corrections_not_own_account';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER ledger_corrections_not_own_account BEFORE UPDATE ON ledger_corrections
    FOR EACH ROW EXECUTE FUNCTION ledger_corrections_not_own_account()
    """,
]

_DOWN = [
    "DROP TRIGGER ledger_corrections_not_own_account ON ledger_corrections",
    "DROP FUNCTION ledger_corrections_not_own_account()",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
