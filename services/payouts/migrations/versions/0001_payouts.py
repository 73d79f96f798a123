"""Payouts, their history, approvals, attempts, provider events; outbox and inbox.

Revision ID: 0001
Revises:
"""

from alembic import op

from prizeflow_runtime.schema_history import messaging_0001

revision = "0001"
down_revision = None
phase = "expand"
branch_labels = None
depends_on = None

STATES = (
    "'requested','pending_approval','approved','submitting','submitted','paid','failed','cancelled','rejected',"
    "'returned'"
)

DDL = (
    f"""
    CREATE TABLE payouts (
        id text PRIMARY KEY,
        payout_request_id text NOT NULL,
        idempotency_key text NOT NULL,
        request_hash text NOT NULL,
        claim_id text NOT NULL,
        player_id text NOT NULL,
        requested_by text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL,
        destination_type text NOT NULL,
        destination_address text NOT NULL,
        destination_memo text,
        provider_type text NOT NULL,
        provider_name text NOT NULL,
        state text NOT NULL,
        approval_policy text NOT NULL,
        correlation_id text NOT NULL,
        cause_event_id text,
        attempts int NOT NULL DEFAULT 0,
        max_attempts int NOT NULL,
        available_at timestamptz NOT NULL DEFAULT now(),
        next_attempt_at timestamptz,
        sync_first boolean NOT NULL DEFAULT false,
        lease_owner text,
        lease_token uuid,
        lease_until timestamptz,
        next_sync_at timestamptz,
        sync_polls int NOT NULL DEFAULT 0,
        provider_ref text,
        tx_hash text,
        fee_asset text,
        fee_amount bigint,
        last_error_code text,
        last_error_detail text,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        submitted_at timestamptz,
        paid_at timestamptz,
        finished_at timestamptz,
        CONSTRAINT payouts_idempotency_key_unique UNIQUE (idempotency_key),
        CONSTRAINT payouts_request_unique UNIQUE (payout_request_id),
        CONSTRAINT payouts_amount_positive CHECK (amount > 0),
        CONSTRAINT payouts_state_known CHECK (state IN ({STATES})),
        CONSTRAINT payouts_policy_known CHECK (approval_policy IN ('auto','single','dual')),
        CONSTRAINT payouts_attempts_bounded CHECK (attempts >= 0 AND max_attempts >= 1),
        CONSTRAINT payouts_submitting_leased
            CHECK (state <> 'submitting' OR (lease_token IS NOT NULL AND lease_until IS NOT NULL)),
        CONSTRAINT payouts_paid_dated CHECK (state NOT IN ('paid','returned') OR paid_at IS NOT NULL),
        CONSTRAINT payouts_fee_nonnegative CHECK (fee_amount IS NULL OR fee_amount >= 0)
    )""",
    "CREATE INDEX payouts_due ON payouts (available_at) WHERE state = 'approved'",
    "CREATE INDEX payouts_leases ON payouts (lease_until) WHERE state = 'submitting'",
    "CREATE INDEX payouts_syncs ON payouts (next_sync_at) WHERE state = 'submitted'",
    "CREATE INDEX payouts_retries ON payouts (next_attempt_at) WHERE state = 'failed' AND next_attempt_at IS NOT NULL",
    "CREATE INDEX payouts_provider_ref ON payouts (provider_type, provider_ref) WHERE provider_ref IS NOT NULL",
    "CREATE INDEX payouts_state_created ON payouts (state, created_at)",
    "CREATE INDEX payouts_player ON payouts (player_id, created_at)",
    f"""
    CREATE TABLE payout_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payout_id text NOT NULL REFERENCES payouts (id),
        from_state text,
        to_state text NOT NULL CHECK (to_state IN ({STATES})),
        at timestamptz NOT NULL,
        actor text NOT NULL,
        reason text,
        error_code text,
        attempt int
    )""",
    "CREATE INDEX payout_history_payout ON payout_history (payout_id, id)",
    """
    CREATE TABLE payout_approvals (
        payout_id text NOT NULL REFERENCES payouts (id),
        approver_id text NOT NULL,
        decided_at timestamptz NOT NULL,
        reason text,
        correlation_id text NOT NULL,
        PRIMARY KEY (payout_id, approver_id)
    )""",
    """
    CREATE TABLE payout_attempts (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payout_id text NOT NULL REFERENCES payouts (id),
        attempt int NOT NULL,
        kind text NOT NULL CHECK (kind IN ('create', 'sync', 'cancel')),
        worker text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NOT NULL,
        outcome text NOT NULL,
        error_code text,
        detail text
    )""",
    "CREATE INDEX payout_attempts_payout ON payout_attempts (payout_id, id)",
    """
    CREATE TABLE provider_events (
        provider text NOT NULL,
        provider_event_id text NOT NULL,
        payout_id text,
        status text,
        outcome text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, provider_event_id)
    )""",
)


def upgrade() -> None:
    messaging_0001.upgrade(op)
    for ddl in DDL:
        op.execute(ddl)


def downgrade() -> None:
    for table in ("provider_events", "payout_attempts", "payout_approvals", "payout_history", "payouts"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    messaging_0001.downgrade(op)
