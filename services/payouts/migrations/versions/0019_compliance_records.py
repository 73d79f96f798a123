"""Compliance records (docs/adr/0012-pay-only-whom-you-may.md): players' identity verification and the risk policy's
versions.

- `kyc_verifications`: one row per player: our reference (`kyc-<uuid5>`), the vendor's applicant id, the status
  (`prizeflow_contracts.policy.VerificationStatus`), the verified identity's country and the sanctions screening's
  outcome (the lists' versions and the LIST's public entry uids/names that matched, never the player's data). No
  name, date of birth, document or address of a person. Trigger `kyc_verifications_move`: a status change follows
  `prizeflow_payouts.domain.compliance.verification.TRANSITIONS` (frozen here; a unit test holds the two equal),
  bumps `sequence`, and the identifiers never change.
- `kyc_verification_history`: append-only (trigger refuses UPDATE, DELETE and TRUNCATE): each status a player's
  verification took, with its sequence and the vendor's review answer (no personal data).
- `risk_policies`: every proposed version of the risk policy, its document, who proposed it against which active
  version, and who decided it. Two people (CHECK decided_by <> proposed_by); at most one `active` (partial unique
  index); trigger `risk_policies_move`: what was proposed never changes, and status moves only proposed → active |
  rejected, active → superseded.
- `risk_policy_announcements`: the last version published to rewards (`RiskPolicyActivated`), so a start-up
  publishes the active one only when it was not (deleting the row makes the next start publish it again).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
phase = "expand"
branch_labels = None
depends_on = None

# (from, to): prizeflow_payouts.domain.compliance.verification.TRANSITIONS as of this revision.
ALLOWED = (
    ("not_started", "pending"),
    ("not_started", "retry"),
    ("not_started", "verified"),
    ("not_started", "failed"),
    ("pending", "retry"),
    ("pending", "verified"),
    ("pending", "failed"),
    ("retry", "pending"),
    ("retry", "verified"),
    ("retry", "failed"),
    ("verified", "failed"),
)

STATUSES = "'not_started', 'pending', 'retry', 'verified', 'failed'"
_PAIRS = ", ".join(f"('{a}', '{b}')" for a, b in ALLOWED)

_UP = [
    f"""
    CREATE TABLE kyc_verifications (
        player_id text PRIMARY KEY CHECK (length(player_id) BETWEEN 1 AND 128),
        reference text NOT NULL UNIQUE CHECK (length(reference) BETWEEN 1 AND 128),
        vendor text NOT NULL CHECK (length(vendor) BETWEEN 1 AND 64),
        vendor_ref text NOT NULL CHECK (length(vendor_ref) BETWEEN 1 AND 256),
        status text NOT NULL CHECK (status IN ({STATUSES})),
        country char(2) CHECK (country ~ '^[A-Z]{{2}}$'),
        sequence bigint NOT NULL CHECK (sequence >= 1),
        screening_outcome text NOT NULL DEFAULT 'not_screened'
            CHECK (screening_outcome IN ('not_screened', 'clear', 'hit')),
        screening_versions jsonb NOT NULL DEFAULT '{{}}' CHECK (jsonb_typeof(screening_versions) = 'object'),
        screening_matches jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(screening_matches) = 'array'),
        screening_cleared_by text[],
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL,
        CONSTRAINT kyc_verifications_one_applicant UNIQUE (vendor, vendor_ref),
        CONSTRAINT kyc_verifications_hit_has_matches
            CHECK ((screening_outcome = 'hit') = (jsonb_array_length(screening_matches) > 0)),
        CONSTRAINT kyc_verifications_country_once_verified CHECK (country IS NULL OR status IN ('verified', 'failed'))
    )
    """,
    "CREATE INDEX kyc_verifications_screening_hits ON kyc_verifications (updated_at) WHERE screening_outcome = 'hit'",
    f"""
    CREATE FUNCTION kyc_verification_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (OLD.player_id, OLD.reference, OLD.vendor, OLD.vendor_ref)
           IS DISTINCT FROM (NEW.player_id, NEW.reference, NEW.vendor, NEW.vendor_ref) THEN
            RAISE EXCEPTION 'kyc verification of %: its references never change', OLD.player_id
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.sequence < OLD.sequence THEN
            RAISE EXCEPTION 'kyc verification of %: sequence % may not go back to %', OLD.player_id, OLD.sequence,
                NEW.sequence USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.status IS DISTINCT FROM NEW.status THEN
            IF (OLD.status, NEW.status) NOT IN ({_PAIRS}) THEN
                RAISE EXCEPTION 'kyc verification of %: % -> % is not a transition of the verification', OLD.player_id,
                    OLD.status, NEW.status USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.sequence <= OLD.sequence THEN
                RAISE EXCEPTION 'kyc verification of %: a status change takes a new sequence', OLD.player_id
                    USING ERRCODE = 'check_violation';
            END IF;
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER kyc_verifications_move BEFORE UPDATE ON kyc_verifications
    FOR EACH ROW EXECUTE FUNCTION kyc_verification_moves()
    """,
    f"""
    CREATE TABLE kyc_verification_history (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        player_id text NOT NULL REFERENCES kyc_verifications (player_id),
        sequence bigint NOT NULL CHECK (sequence >= 1),
        status text NOT NULL CHECK (status IN ({STATUSES})),
        detail text NOT NULL DEFAULT '' CHECK (length(detail) <= 200),
        at timestamptz NOT NULL,
        CONSTRAINT kyc_verification_history_one_per_sequence UNIQUE (player_id, sequence)
    )
    """,
    """
    CREATE FUNCTION kyc_verification_history_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'kyc_verification_history is append-only (% refused)', TG_OP USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER kyc_verification_history_append_only BEFORE UPDATE OR DELETE ON kyc_verification_history
    FOR EACH ROW EXECUTE FUNCTION kyc_verification_history_kept()
    """,
    """
    CREATE TRIGGER kyc_verification_history_no_truncate BEFORE TRUNCATE ON kyc_verification_history
    FOR EACH STATEMENT EXECUTE FUNCTION kyc_verification_history_kept()
    """,
    """
    CREATE TABLE risk_policies (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        version bigint NOT NULL UNIQUE CHECK (version >= 1),
        document jsonb NOT NULL CHECK (jsonb_typeof(document) = 'object' AND document ->> 'version' = version::text),
        status text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'active', 'superseded', 'rejected')),
        base_version bigint NOT NULL CHECK (base_version >= 0 AND base_version < version),
        proposed_by text NOT NULL CHECK (length(proposed_by) BETWEEN 1 AND 128),
        proposed_at timestamptz NOT NULL,
        reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
        decided_by text CHECK (length(decided_by) BETWEEN 1 AND 128),
        decided_at timestamptz,
        decision_reason text CHECK (length(decision_reason) <= 1000),
        CONSTRAINT risk_policies_two_people CHECK (decided_by <> proposed_by),
        CONSTRAINT risk_policies_decided CHECK (
            (status = 'proposed') = (decided_by IS NULL) AND (decided_by IS NULL) = (decided_at IS NULL)
        )
    )
    """,
    "CREATE UNIQUE INDEX risk_policies_one_active ON risk_policies ((true)) WHERE status = 'active'",
    "CREATE INDEX risk_policies_by_status ON risk_policies (status, version)",
    """
    CREATE FUNCTION risk_policy_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'risk policy version %: versions are never deleted', OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        IF (OLD.version, OLD.document, OLD.base_version, OLD.proposed_by, OLD.proposed_at, OLD.reason)
           IS DISTINCT FROM (NEW.version, NEW.document, NEW.base_version, NEW.proposed_by, NEW.proposed_at, NEW.reason)
        THEN
            RAISE EXCEPTION 'risk policy version %: what was proposed never changes', OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.decided_by IS NOT NULL
           AND (OLD.decided_by, OLD.decided_at, OLD.decision_reason)
               IS DISTINCT FROM (NEW.decided_by, NEW.decided_at, NEW.decision_reason) THEN
            RAISE EXCEPTION 'risk policy version %: a decision is never rewritten', OLD.version
                USING ERRCODE = 'check_violation';
        END IF;
        IF OLD.status IS DISTINCT FROM NEW.status
           AND (OLD.status, NEW.status) NOT IN (('proposed', 'active'), ('proposed', 'rejected'),
                                                ('active', 'superseded')) THEN
            RAISE EXCEPTION 'risk policy version %: % -> % is not allowed', OLD.version, OLD.status, NEW.status
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER risk_policies_move BEFORE UPDATE OR DELETE ON risk_policies
    FOR EACH ROW EXECUTE FUNCTION risk_policy_moves()
    """,
    """
    CREATE TABLE risk_policy_announcements (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        version bigint NOT NULL CHECK (version >= 0),
        published_at timestamptz NOT NULL
    )
    """,
]

_DOWN = [
    "DROP TABLE risk_policy_announcements",
    "DROP TABLE risk_policies",
    "DROP FUNCTION risk_policy_moves()",
    "DROP TABLE kyc_verification_history",
    "DROP FUNCTION kyc_verification_history_kept()",
    "DROP TABLE kyc_verifications",
    "DROP FUNCTION kyc_verification_moves()",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
