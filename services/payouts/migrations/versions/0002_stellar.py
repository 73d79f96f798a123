"""Stellar provider books: source-account lanes (sequence numbers), payouts it holds, one row per envelope built.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
phase = "expand"
branch_labels = None
depends_on = None

TX_STATES = "'built','signing','signed','external','submitted','success','failed','dead','refused'"

DDL = (
    # One row per source account (the funding account, or each channel account). `sequence` is the last
    # sequence number used or reserved on it (the next envelope takes sequence + 1); NULL = read it from RPC.
    # `busy_tx` is the one envelope in flight on the lane. Every change is a compare-and-set.
    """
    CREATE TABLE stellar_lanes (
        account text PRIMARY KEY,
        role text NOT NULL CHECK (role IN ('funding', 'channel')),
        sequence bigint CHECK (sequence >= 0),
        busy_tx text,
        synced_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
    # The provider's own view of each payout, keyed by OUR idempotency key (one payout, one row).
    """
    CREATE TABLE stellar_payouts (
        idempotency_key text PRIMARY KEY,
        payout_id text NOT NULL UNIQUE,
        provider text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        destination text NOT NULL,
        state text NOT NULL CHECK (state IN ('queued', 'in_tx', 'paid', 'failed')),
        tx_id text,
        tx_hash text,
        ledger integer,
        attempts integer NOT NULL DEFAULT 0,
        isolate boolean NOT NULL DEFAULT false,
        error_code text,
        error_detail text,
        not_before timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (state <> 'in_tx' OR tx_id IS NOT NULL),
        CHECK (state <> 'paid' OR tx_hash IS NOT NULL),
        CHECK (state <> 'failed' OR error_code IS NOT NULL)
    )""",
    "CREATE INDEX stellar_payouts_queue ON stellar_payouts (provider, not_before) WHERE state = 'queued'",
    "CREATE INDEX stellar_payouts_tx ON stellar_payouts (tx_id)",
    # Every envelope ever built (one per attempt), never deleted: what was signed, sent and what happened.
    f"""
    CREATE TABLE stellar_txs (
        id text PRIMARY KEY,
        provider text NOT NULL,
        lane text NOT NULL REFERENCES stellar_lanes (account),
        sequence bigint NOT NULL,
        kind text NOT NULL CHECK (kind IN ('payments', 'contract')),
        payout_ids text[] NOT NULL,
        state text NOT NULL CHECK (state IN ({TX_STATES})),
        unsigned_xdr text NOT NULL,
        sign_request jsonb NOT NULL,
        tx_hash text NOT NULL UNIQUE,
        signed_xdr text,
        signed_by text,
        fee bigint NOT NULL,
        max_time bigint NOT NULL CHECK (max_time > 0),
        sign_requests integer NOT NULL DEFAULT 0,
        sign_requested_at timestamptz,
        submits integer NOT NULL DEFAULT 0,
        last_submit_at timestamptz,
        last_status text,
        polls integer NOT NULL DEFAULT 0,
        next_check_at timestamptz NOT NULL DEFAULT now(),
        result_code text,
        op_codes text[],
        ledger integer,
        error_code text,
        detail text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (state NOT IN ('signed', 'submitted', 'success', 'failed') OR signed_xdr IS NOT NULL)
    )""",
    # No two live envelopes ever share a sequence number on one account (dead/refused ones never landed).
    "CREATE UNIQUE INDEX stellar_txs_lane_sequence ON stellar_txs (lane, sequence) "
    "WHERE state NOT IN ('dead', 'refused')",
    # One envelope in flight per lane.
    "CREATE UNIQUE INDEX stellar_txs_lane_open ON stellar_txs (lane) "
    "WHERE state IN ('signing', 'signed', 'external', 'submitted')",
    "CREATE INDEX stellar_txs_open ON stellar_txs (provider, next_check_at) "
    "WHERE state IN ('built', 'signing', 'signed', 'external', 'submitted')",
)


def upgrade() -> None:
    for ddl in DDL:
        op.execute(ddl)


def downgrade() -> None:
    for table in ("stellar_txs", "stellar_payouts", "stellar_lanes"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
