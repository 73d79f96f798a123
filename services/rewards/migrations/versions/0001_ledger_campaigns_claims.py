"""Ledger (accounts, transfers), campaigns, held allocations, claims, risk flags; outbox + inbox.

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

_UP = [
    """
    CREATE TABLE ledger_accounts (
        id uuid PRIMARY KEY,
        kind text NOT NULL CHECK (kind IN ('player_wallet', 'campaign_pool', 'treasury', 'platform_revenue',
            'organizer_revenue', 'payout_clearing', 'provider_external', 'entry_escrow')),
        owner_id text NOT NULL,
        asset text NOT NULL,
        flags integer NOT NULL DEFAULT 0,
        debits_posted bigint NOT NULL DEFAULT 0,
        credits_posted bigint NOT NULL DEFAULT 0,
        debits_pending bigint NOT NULL DEFAULT 0,
        credits_pending bigint NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ledger_accounts_natural_key UNIQUE (kind, owner_id, asset),
        CONSTRAINT ledger_accounts_counters_non_negative CHECK (
            debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0),
        -- TigerBeetle's debits_must_not_exceed_credits (flag bit 1): wallets, pools and clearing never go
        -- negative, whatever the code above does.
        CONSTRAINT debits_must_not_exceed_credits CHECK (
            (flags & 1) = 0 OR debits_posted + debits_pending <= credits_posted)
    )
    """,
    """
    CREATE TABLE ledger_transfers (
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id uuid PRIMARY KEY,
        debit_account_id uuid NOT NULL,
        credit_account_id uuid NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        kind text NOT NULL,
        flags integer NOT NULL DEFAULT 0,
        pending_id uuid REFERENCES ledger_transfers (id),
        business_key text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ledger_transfers_distinct_accounts CHECK (debit_account_id <> credit_account_id),
        CONSTRAINT ledger_transfers_post_void_has_pending CHECK (((flags & 6) = 0) = (pending_id IS NULL))
    )
    """,
    # A pending transfer is posted or voided at most once: the second resolution cannot be inserted.
    "CREATE UNIQUE INDEX ledger_transfers_resolves_once ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL",
    "CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, seq)",
    "CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, seq)",
    # Transfers are immutable: corrections are new transfers.
    """
    CREATE FUNCTION ledger_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'ledger_transfers is append-only' USING ERRCODE = 'restrict_violation'; END $$
    """,
    """
    CREATE TRIGGER ledger_transfers_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_immutable()
    """,
    """
    CREATE TABLE campaigns (
        id text PRIMARY KEY,
        name text NOT NULL,
        asset text NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'paused', 'closed')),
        low_threshold bigint CHECK (low_threshold > 0),
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE held_allocations (
        round_id text PRIMARY KEY,
        campaign_id text NOT NULL REFERENCES campaigns (id),
        asset text NOT NULL,
        total bigint NOT NULL CHECK (total > 0),
        reason text NOT NULL,
        event jsonb NOT NULL,
        status text NOT NULL CHECK (status IN ('held', 'released')),
        held_at timestamptz NOT NULL DEFAULT now(),
        released_at timestamptz,
        released_by text
    )
    """,
    "CREATE INDEX held_allocations_open ON held_allocations (campaign_id, held_at) WHERE status = 'held'",
    """
    CREATE TABLE claims (
        id text PRIMARY KEY,
        player_id text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        destination jsonb NOT NULL,
        destination_key text NOT NULL,
        status text NOT NULL CHECK (status IN ('held', 'approved', 'paid', 'rejected', 'voided', 'returned')),
        hold_code text,
        hold_detail text,
        rejection_code text,
        pending_transfer_id uuid NOT NULL,
        payout_request_id text NOT NULL,
        correlation_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        decided_at timestamptz,
        decided_by text,
        settled_at timestamptz
    )
    """,
    "CREATE INDEX claims_player_time ON claims (player_id, created_at)",
    "CREATE INDEX claims_held ON claims (created_at) WHERE status = 'held'",
    """
    CREATE TABLE payout_destinations (
        player_id text NOT NULL,
        destination_key text NOT NULL,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (player_id, destination_key)
    )
    """,
    """
    CREATE TABLE player_risk_flags (
        player_id text PRIMARY KEY,
        flagged boolean NOT NULL,
        reason text,
        updated_by text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]

_DOWN = [
    "DROP TABLE player_risk_flags",
    "DROP TABLE payout_destinations",
    "DROP TABLE claims",
    "DROP TABLE held_allocations",
    "DROP TABLE campaigns",
    "DROP TABLE ledger_transfers",
    "DROP FUNCTION ledger_transfers_immutable()",
    "DROP TABLE ledger_accounts",
]


def upgrade() -> None:
    messaging_0001.upgrade(op)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
    messaging_0001.downgrade(op)
