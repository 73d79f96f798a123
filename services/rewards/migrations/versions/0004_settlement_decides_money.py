"""Money follows settlement's decisions; one payout per claim; claims only to routable destinations.

- `round_outcomes`: rounds whose money settlement decided (settled or voided): a voided round takes no more fees.
- Entry escrow is per round (account owner = round id) and flagged debits_must_not_exceed_credits: a round
  can never pay out more than its entries paid in. The platform-wide escrow of earlier versions keeps its
  balance and flags; rounds in flight when upgrading should be drained first (see the rewards README).
- `claims.payout_id`: the one payout that settles a claim (unique); a second payout for a claim is refused.
- `payout_routes`: what payouts last published it can pay (PayoutRoutesPublished).

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

_UP = [
    """
    CREATE TABLE round_outcomes (
        round_id text PRIMARY KEY,
        outcome text NOT NULL CHECK (outcome IN ('settled', 'voided')),
        decided_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "ALTER TABLE claims ADD COLUMN payout_id text",
    "CREATE UNIQUE INDEX claims_one_per_payout ON claims (payout_id) WHERE payout_id IS NOT NULL",
    # A claim is settled by its own payout only: once set, the payout id never changes.
    """
    CREATE FUNCTION claims_payout_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.payout_id IS NOT NULL AND NEW.payout_id IS DISTINCT FROM OLD.payout_id THEN
            RAISE EXCEPTION 'claim % is settled by payout %, not %', OLD.id, OLD.payout_id, NEW.payout_id
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER claims_payout_fixed BEFORE UPDATE OF payout_id ON claims
    FOR EACH ROW EXECUTE FUNCTION claims_payout_fixed()
    """,
    """
    CREATE TABLE payout_routes (
        asset text NOT NULL,
        destination_type text NOT NULL,
        provider text NOT NULL,
        published_at timestamptz NOT NULL,
        PRIMARY KEY (asset, destination_type, provider)
    )
    """,
    """
    CREATE TABLE payout_routes_version (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        sequence bigint NOT NULL CHECK (sequence >= 1),
        published_at timestamptz NOT NULL
    )
    """,
]

_DOWN = [
    "DROP TABLE payout_routes_version",
    "DROP TABLE payout_routes",
    "DROP TRIGGER claims_payout_fixed ON claims",
    "DROP FUNCTION claims_payout_fixed()",
    "DROP INDEX claims_one_per_payout",
    "ALTER TABLE claims DROP COLUMN payout_id",
    "DROP TABLE round_outcomes",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
