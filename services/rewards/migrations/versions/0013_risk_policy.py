"""The risk policy before a claim reserves money, and the claims that wait for the player's verification
(docs/adr/0012-pay-only-whom-you-may.md).

- `risk_policy`: the one active policy version, as payouts last published it (`RiskPolicyActivated`); a row is
  replaced only by a higher version (a trigger refuses anything else).
- `player_verifications`: each player's verification status and payouts' reference for it
  (`PlayerVerificationChanged`); only a higher sequence replaces a row (trigger). No personal data: a status,
  an opaque reference, a sequence.
- `claims.policy_version`: the policy version a claim was decided with (NULL: decided before this revision).
- The indexes the policy's window sums read: a player's claims in an asset over time, a destination's claims over
  time (across players), and the claims waiting for a player's verification.

Online since issue 56: `claims.policy_version` is added plain and its CHECK `NOT VALID`, validated after a commit,
and the indexes on `claims` are built CONCURRENTLY: writes to `claims` never wait on a scan.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, validate_constraint

revision = "0013"
down_revision = "0012"
phase = "expand"
branch_labels = None
depends_on = None

# Before the first commit, so it may run again.
_CLAIMS_COLUMN = (
    "ALTER TABLE claims ADD COLUMN IF NOT EXISTS policy_version bigint, "
    "DROP CONSTRAINT IF EXISTS claims_policy_version_known, "
    "ADD CONSTRAINT claims_policy_version_known CHECK (policy_version >= 0) NOT VALID"
)

_CLAIMS_INDEXES = {
    "claims_player_asset_time": "ON claims (player_id, asset, created_at) INCLUDE (amount, status)",
    "claims_destination_time": "ON claims (destination_key, created_at) INCLUDE (asset, amount, status)",
    "claims_waiting_verification": "ON claims (player_id, id) WHERE status = 'held' AND hold_code = 'kyc_required'",
}

# The new tables, after the last commit: one transaction with the revision's stamp.
_UP = [
    """
    CREATE TABLE risk_policy (
        id boolean PRIMARY KEY DEFAULT true CONSTRAINT risk_policy_one_row CHECK (id),
        version bigint NOT NULL CONSTRAINT risk_policy_version_positive CHECK (version >= 1),
        document jsonb NOT NULL CONSTRAINT risk_policy_document_object CHECK (jsonb_typeof(document) = 'object'),
        proposed_by text NOT NULL CHECK (length(proposed_by) BETWEEN 1 AND 128),
        approved_by text NOT NULL CHECK (length(approved_by) BETWEEN 1 AND 128),
        activated_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT risk_policy_two_people CHECK (proposed_by <> approved_by)
    )
    """,
    """
    CREATE FUNCTION risk_policy_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.version <= OLD.version THEN
            RAISE EXCEPTION 'risk policy version % cannot replace version %', NEW.version, OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER risk_policy_forward BEFORE UPDATE ON risk_policy "
    "FOR EACH ROW EXECUTE FUNCTION risk_policy_forward()",
    """
    CREATE TABLE player_verifications (
        player_id text PRIMARY KEY CHECK (length(player_id) BETWEEN 1 AND 128),
        status text NOT NULL CHECK (status IN ('not_started', 'pending', 'retry', 'verified', 'failed')),
        reference text NOT NULL CHECK (length(reference) BETWEEN 1 AND 128),
        sequence bigint NOT NULL CHECK (sequence >= 1),
        changed_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE FUNCTION player_verification_forward() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.sequence <= OLD.sequence THEN
            RAISE EXCEPTION 'verification of player % at sequence % cannot replace sequence %',
                OLD.player_id, NEW.sequence, OLD.sequence USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER player_verification_forward BEFORE UPDATE ON player_verifications "
    "FOR EACH ROW EXECUTE FUNCTION player_verification_forward()",
]

_DOWN = [
    "DROP INDEX claims_waiting_verification",
    "DROP INDEX claims_destination_time",
    "DROP INDEX claims_player_asset_time",
    "ALTER TABLE claims DROP COLUMN policy_version",
    "DROP TABLE player_verifications",
    "DROP FUNCTION player_verification_forward()",
    "DROP TABLE risk_policy",
    "DROP FUNCTION risk_policy_forward()",
]


def upgrade() -> None:
    op.execute(_CLAIMS_COLUMN)
    validate_constraint("claims", "claims_policy_version_known")
    for name, definition in _CLAIMS_INDEXES.items():
        create_index_concurrently(name, definition)
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
