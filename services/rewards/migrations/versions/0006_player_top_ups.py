"""Player top-ups through a checkout provider (Stripe Checkout, the sandbox).

- Two account kinds: `provider_clearing` (what a provider collected from checkouts for us) and
  `player_receivable` (what a player owes after a refund or dispute their wallet could not cover).
- `top_ups`: one row per checkout session, written with the provider's answer. Its one credit is a ledger
  transfer (unique); once credited, failed or expired it never changes state again, and its credit never
  changes (trigger).
- `top_up_adjustments`: refunds, disputes and disputes won, once per (provider, kind, adjustment_ref); pending
  until applied (a refund reported before the payment), applied once with a split that adds up to the amount,
  only for a credited top-up of the same provider, and never changed after (trigger).
- `sandbox_checkout_sessions`: the sandbox provider's sessions (no external service: it lives here).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
phase = "expand"
branch_labels = None
depends_on = None

_KINDS_BEFORE = (
    "'player_wallet', 'campaign_pool', 'treasury', 'platform_revenue', 'organizer_revenue', 'payout_clearing', "
    "'provider_external', 'entry_escrow'"
)
_KINDS = _KINDS_BEFORE + ", 'provider_clearing', 'player_receivable'"

_UP = [
    "ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check",
    f"ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN ({_KINDS}))",
    """
    CREATE TABLE top_ups (
        id text PRIMARY KEY,
        player_id text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL CONSTRAINT top_ups_amount_positive CHECK (amount > 0),
        provider text NOT NULL,
        status text NOT NULL CONSTRAINT top_ups_status CHECK (status IN ('created', 'credited', 'failed', 'expired')),
        session_ref text NOT NULL,
        url text NOT NULL,
        expires_at timestamptz NOT NULL,
        correlation_id text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        payment_ref text,
        credit_transfer_id uuid CONSTRAINT top_ups_credit_exists REFERENCES ledger_transfers (id),
        credited_at timestamptz,
        CONSTRAINT top_ups_id_provider UNIQUE (id, provider),
        CONSTRAINT top_ups_one_session UNIQUE (provider, session_ref),
        CONSTRAINT top_ups_one_credit UNIQUE (credit_transfer_id),
        CONSTRAINT top_ups_credited_iff_credit CHECK (
            (status = 'credited') = (credit_transfer_id IS NOT NULL)
            AND (credit_transfer_id IS NULL) = (credited_at IS NULL))
    )
    """,
    "CREATE UNIQUE INDEX top_ups_one_payment ON top_ups (provider, payment_ref) WHERE payment_ref IS NOT NULL",
    "CREATE INDEX top_ups_player_recent ON top_ups (player_id, asset, created_at)",
    # Payment events name a top-up by our id, its session or its payment (any provider): each is an index lookup.
    "CREATE INDEX top_ups_by_session ON top_ups (session_ref)",
    "CREATE INDEX top_ups_by_payment ON top_ups (payment_ref) WHERE payment_ref IS NOT NULL",
    # created → credited | failed | expired, then never again; a credit, once set, stays the one credit.
    """
    CREATE FUNCTION top_ups_transition() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status IS DISTINCT FROM OLD.status AND OLD.status <> 'created' THEN
            RAISE EXCEPTION 'top-up % is %: it cannot become %', OLD.id, OLD.status, NEW.status
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_ups_transition';
        END IF;
        IF OLD.credit_transfer_id IS NOT NULL AND NEW.credit_transfer_id IS DISTINCT FROM OLD.credit_transfer_id THEN
            RAISE EXCEPTION 'top-up % was credited by %', OLD.id, OLD.credit_transfer_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_ups_transition';
        END IF;
        IF (NEW.id, NEW.player_id, NEW.asset, NEW.amount, NEW.provider, NEW.session_ref)
           IS DISTINCT FROM (OLD.id, OLD.player_id, OLD.asset, OLD.amount, OLD.provider, OLD.session_ref) THEN
            RAISE EXCEPTION 'top-up % keeps its player, asset, amount, provider and session', OLD.id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_ups_transition';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER top_ups_transition BEFORE UPDATE ON top_ups FOR EACH ROW EXECUTE FUNCTION top_ups_transition()",
    """
    CREATE TABLE top_up_adjustments (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        top_up_id text NOT NULL,
        provider text NOT NULL,
        kind text NOT NULL CONSTRAINT top_up_adjustments_kind CHECK (kind IN ('refund', 'dispute', 'dispute_won')),
        adjustment_ref text NOT NULL,
        amount bigint NOT NULL CONSTRAINT top_up_adjustments_amount_positive CHECK (amount > 0),
        status text NOT NULL CONSTRAINT top_up_adjustments_status CHECK (status IN ('pending', 'applied')),
        debited bigint NOT NULL DEFAULT 0 CHECK (debited >= 0),
        receivable bigint NOT NULL DEFAULT 0 CHECK (receivable >= 0),
        credited bigint NOT NULL DEFAULT 0 CHECK (credited >= 0),
        provider_event_id text NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz,
        CONSTRAINT top_up_adjustments_of_top_up FOREIGN KEY (top_up_id, provider) REFERENCES top_ups (id, provider),
        CONSTRAINT top_up_adjustments_once UNIQUE (provider, kind, adjustment_ref),
        CONSTRAINT top_up_adjustments_split CHECK (
            (status = 'pending' AND debited = 0 AND receivable = 0 AND credited = 0 AND applied_at IS NULL)
            OR (status = 'applied' AND debited + receivable + credited = amount AND applied_at IS NOT NULL)),
        CONSTRAINT top_up_adjustments_legs CHECK (
            (kind = 'dispute_won' AND debited = 0) OR (kind <> 'dispute_won' AND credited = 0))
    )
    """,
    "CREATE INDEX top_up_adjustments_by_top_up ON top_up_adjustments (top_up_id, seq)",
    # pending → applied once, and only for a credited top-up; an applied adjustment never changes.
    """
    CREATE FUNCTION top_up_adjustments_apply_once() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.status <> 'pending' THEN
            RAISE EXCEPTION 'adjustment % % of top-up % was applied already',
                OLD.kind, OLD.adjustment_ref, OLD.top_up_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_up_adjustments_apply_once';
        END IF;
        IF (NEW.top_up_id, NEW.provider, NEW.kind, NEW.adjustment_ref, NEW.amount)
           IS DISTINCT FROM (OLD.top_up_id, OLD.provider, OLD.kind, OLD.adjustment_ref, OLD.amount) THEN
            RAISE EXCEPTION 'adjustment % % keeps its top-up, kind, ref and amount', OLD.kind, OLD.adjustment_ref
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_up_adjustments_apply_once';
        END IF;
        IF NEW.status = 'applied' AND NOT EXISTS (
            SELECT 1 FROM top_ups t WHERE t.id = NEW.top_up_id AND t.status = 'credited'
        ) THEN
            RAISE EXCEPTION 'adjustment % % applied to top-up %, which is not credited', NEW.kind,
                NEW.adjustment_ref, NEW.top_up_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'top_up_adjustments_apply_once';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER top_up_adjustments_apply_once BEFORE UPDATE ON top_up_adjustments
    FOR EACH ROW EXECUTE FUNCTION top_up_adjustments_apply_once()
    """,
    """
    CREATE TABLE sandbox_checkout_sessions (
        id text PRIMARY KEY,
        top_up_id text NOT NULL UNIQUE,
        amount bigint NOT NULL CHECK (amount > 0),
        currency text NOT NULL,
        status text NOT NULL CHECK (status IN ('open', 'complete', 'expired')),
        payment_status text NOT NULL CHECK (payment_status IN ('unpaid', 'paid')),
        payment_ref text,
        metadata jsonb NOT NULL,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]

_DOWN = [
    "DROP TABLE sandbox_checkout_sessions",
    "DROP TABLE top_up_adjustments",
    "DROP FUNCTION top_up_adjustments_apply_once()",
    "DROP TABLE top_ups",
    "DROP FUNCTION top_ups_transition()",
    # Fails while accounts of the new kinds exist: their transfers are money that moved, not to be dropped.
    "ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check",
    f"ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check CHECK (kind IN ({_KINDS_BEFORE}))",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
