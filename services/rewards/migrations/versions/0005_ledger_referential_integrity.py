"""The ledger's and the claims' references, enforced by the database.

- A transfer's debit and credit accounts exist, and both are in the transfer's own asset: a statement-level
  trigger over the inserted rows: one query per statement (measured at 7-10 ms per 1000 transfers, where two
  foreign keys, checked row by row, cost 35-40 ms). It runs when the INSERT ends; the ledger creates (and
  locks) a batch's accounts before inserting its transfers.
- What makes that as good as a foreign key: an account is never deleted nor truncated, and its identity (id,
  kind, owner, asset, flags) never changes, so an account a transfer names stays what it was.
- A claim's reservation exists (`claims.pending_transfer_id` → `ledger_transfers (id)`) and backs that claim
  only (UNIQUE); a payout request names one claim (`claims.payout_request_id` UNIQUE).

The rows already there are checked while the new triggers hold their table lock: an orphan transfer or a transfer
across assets fails the upgrade (nothing changes) instead of being grandfathered in.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE FUNCTION ledger_accounts_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger accounts are never deleted (transfers name them)' USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER ledger_accounts_never_deleted BEFORE DELETE OR TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_accounts_never_deleted()
    """,
    """
    CREATE FUNCTION ledger_accounts_identity_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger account % keeps its id, kind, owner, asset and flags', OLD.id
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    # Fires only for a real change of these columns: the counters' updates and the ledger's lock (an upsert
    # whose update never happens) do not pay for it.
    """
    CREATE TRIGGER ledger_accounts_identity_fixed BEFORE UPDATE OF id, kind, owner_id, asset, flags ON ledger_accounts
    FOR EACH ROW WHEN (
        OLD.id IS DISTINCT FROM NEW.id OR OLD.kind IS DISTINCT FROM NEW.kind
        OR OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.asset IS DISTINCT FROM NEW.asset
        OR OLD.flags IS DISTINCT FROM NEW.flags
    )
    EXECUTE FUNCTION ledger_accounts_identity_fixed()
    """,
    # One query per INSERT statement over its new rows: each (account, asset) the statement names is looked up
    # once (a pool paying 1000 wallets: 1001 lookups, not 2000). Only a refused statement looks for a culprit.
    """
    CREATE FUNCTION ledger_transfers_accounts_check() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        bad record;
    BEGIN
        PERFORM 1
           FROM (SELECT debit_account_id AS id, asset FROM new_transfers
                 UNION SELECT credit_account_id, asset FROM new_transfers) AS named
          WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = named.id AND a.asset = named.asset)
          LIMIT 1;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        SELECT n.id, n.business_key, n.asset, n.debit_account_id, n.credit_account_id,
               (SELECT a.asset FROM ledger_accounts a WHERE a.id = n.debit_account_id) AS debit_asset,
               (SELECT a.asset FROM ledger_accounts a WHERE a.id = n.credit_account_id) AS credit_asset
          INTO bad
          FROM new_transfers n
         WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = n.debit_account_id AND a.asset = n.asset)
            OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = n.credit_account_id AND a.asset = n.asset)
         LIMIT 1;
        IF bad.debit_asset IS NULL OR bad.credit_asset IS NULL THEN
            RAISE EXCEPTION 'transfer % (%) names account %, which does not exist', bad.id, bad.business_key,
                CASE WHEN bad.debit_asset IS NULL THEN bad.debit_account_id ELSE bad.credit_account_id END
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'ledger_transfers_accounts_exist';
        END IF;
        RAISE EXCEPTION 'transfer % (%) in % moves money from an account in % to an account in %',
            bad.id, bad.business_key, bad.asset, bad.debit_asset, bad.credit_asset
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ledger_transfers_same_asset';
    END $$
    """,
    """
    CREATE TRIGGER ledger_transfers_accounts_check AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_accounts_check()
    """,
    # The rows already there, under the triggers' table locks (held until this migration commits).
    """
    DO $$
    BEGIN
        IF EXISTS (
            SELECT 1 FROM ledger_transfers t
             WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.debit_account_id AND a.asset = t.asset)
                OR NOT EXISTS (SELECT 1 FROM ledger_accounts a WHERE a.id = t.credit_account_id AND a.asset = t.asset)
        ) THEN
            RAISE EXCEPTION 'ledger_transfers holds transfers naming a missing account or an account of another '
                'asset: repair them before upgrading' USING ERRCODE = 'foreign_key_violation';
        END IF;
    END $$
    """,
    """
    ALTER TABLE claims ADD CONSTRAINT claims_pending_transfer_exists
        FOREIGN KEY (pending_transfer_id) REFERENCES ledger_transfers (id)
    """,
    "ALTER TABLE claims ADD CONSTRAINT claims_one_per_reservation UNIQUE (pending_transfer_id)",
    "ALTER TABLE claims ADD CONSTRAINT claims_payout_request_unique UNIQUE (payout_request_id)",
]

_DOWN = [
    "ALTER TABLE claims DROP CONSTRAINT claims_payout_request_unique",
    "ALTER TABLE claims DROP CONSTRAINT claims_one_per_reservation",
    "ALTER TABLE claims DROP CONSTRAINT claims_pending_transfer_exists",
    "DROP TRIGGER ledger_transfers_accounts_check ON ledger_transfers",
    "DROP FUNCTION ledger_transfers_accounts_check()",
    "DROP TRIGGER ledger_accounts_identity_fixed ON ledger_accounts",
    "DROP FUNCTION ledger_accounts_identity_fixed()",
    "DROP TRIGGER ledger_accounts_never_deleted ON ledger_accounts",
    "DROP FUNCTION ledger_accounts_never_deleted()",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
