"""One claim, at most one payout, ever; requests that can never be paid are refused and remembered.

- UNIQUE (claim_id) on payouts.
- `route_announcements`: the last routes announced to rewards, so an unchanged configuration is not re-announced.
- `payout_request_refusals`: one row per claim whose request payouts refused for good (no route, the provider
  refuses the destination, unreadable). A claim has a payout or a refusal, never both: each insert takes a
  transaction lock on the claim and checks the other table (race-free across replicas).

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
    "ALTER TABLE payouts ADD CONSTRAINT payouts_one_per_claim UNIQUE (claim_id)",
    """
    CREATE TABLE payout_request_refusals (
        claim_id text PRIMARY KEY,
        payout_request_id text NOT NULL UNIQUE,
        idempotency_key text NOT NULL,
        request_hash text NOT NULL,
        code text NOT NULL,
        detail text NOT NULL,
        correlation_id text NOT NULL,
        refused_at timestamptz NOT NULL
    )
    """,
    """
    CREATE FUNCTION payout_claim_taken() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- Serialize everything that decides this claim's fate, then look at what is committed.
        PERFORM pg_advisory_xact_lock(hashtextextended('prizeflow-payout-claim:' || NEW.claim_id, 0));
        IF TG_TABLE_NAME = 'payouts' THEN
            IF EXISTS (SELECT 1 FROM payout_request_refusals WHERE claim_id = NEW.claim_id) THEN
                RAISE EXCEPTION 'claim %''s payout request was refused: it can have no payout', NEW.claim_id
                    USING ERRCODE = 'unique_violation';
            END IF;
        ELSIF EXISTS (SELECT 1 FROM payouts WHERE claim_id = NEW.claim_id) THEN
            RAISE EXCEPTION 'claim % has a payout: its request cannot be refused', NEW.claim_id
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER payouts_claim_not_refused BEFORE INSERT ON payouts
    FOR EACH ROW EXECUTE FUNCTION payout_claim_taken()
    """,
    """
    CREATE TRIGGER refusals_claim_has_no_payout BEFORE INSERT ON payout_request_refusals
    FOR EACH ROW EXECUTE FUNCTION payout_claim_taken()
    """,
]

_UP.append(
    # What payouts last told rewards it can pay (PayoutRoutesPublished): announced again only on a change.
    """
    CREATE TABLE route_announcements (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        sequence bigint NOT NULL CHECK (sequence >= 1),
        digest text NOT NULL,
        published_at timestamptz NOT NULL
    )
    """
)

_DOWN = [
    "DROP TABLE route_announcements",
    "DROP TRIGGER refusals_claim_has_no_payout ON payout_request_refusals",
    "DROP TRIGGER payouts_claim_not_refused ON payouts",
    "DROP FUNCTION payout_claim_taken()",
    "DROP TABLE payout_request_refusals",
    "ALTER TABLE payouts DROP CONSTRAINT payouts_one_per_claim",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
