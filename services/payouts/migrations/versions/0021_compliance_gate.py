"""The compliance gate's holds and records (docs/adr/0012-pay-only-whom-you-may.md).

- `payouts.hold_code` (NULL | kyc_required | screening_hit | policy), `hold_detail` (staff-only, never a player's
  data), `held_at` (when the current hold began: only approvals from then on count for it), `destination_key`
  (sha256 of type|address|memo, as rewards computes it; filled for the payouts of the last 366 days, NULL for
  older ones) with the indexes the gate's window sums and first-use read.
- `compliance_decisions`: every decision of the gate (request or send time), with the policy and list versions it
  was made with; append-only (trigger).
- `screening_clearances`: a screening match two different approvers cleared, per (subject, list entry): the same
  false positive does not hold the same subject again.
- The transition trigger gains `approved → pending_approval` (the send-time gate holds a payout no provider saw).

Online since issue 56: the columns are added plain, their CHECKs `NOT VALID` and validated after a commit, the
backfill runs after that commit (row locks only) and the indexes are built CONCURRENTLY: writes to `payouts` never
wait on a scan. What precedes the last index build may run again (a retry runs the revision from its start).

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, validate_constraint

revision = "0021"
down_revision = "0020"
phase = "expand"
branch_labels = None
depends_on = None


# (from, to) as migration 0015 froze them (a revision never imports another, nor live code: copied here).
ALLOWED_0015: tuple[tuple[str, str], ...] = (
    ("requested", "pending_approval"),
    ("requested", "approved"),
    ("requested", "cancelled"),
    ("pending_approval", "approved"),
    ("pending_approval", "rejected"),
    ("pending_approval", "cancelled"),
    ("approved", "submitting"),
    ("approved", "cancelled"),
    ("approved", "paid"),
    ("submitting", "submitted"),
    ("submitting", "paid"),
    ("submitting", "failed"),
    ("submitting", "cancelled"),
    ("submitted", "paid"),
    ("submitted", "failed"),
    ("submitted", "cancelled"),
    ("paid", "returned"),
    ("failed", "approved"),
    ("failed", "cancelled"),
)
# (from, to): prizeflow_payouts.domain.state.TRANSITIONS as of this revision (tests/unit/test_state.py).
ALLOWED: tuple[tuple[str, str], ...] = (*ALLOWED_0015, ("approved", "pending_approval"))


def reachable(pairs: tuple[tuple[str, str], ...]) -> set[tuple[str, str]]:
    """Every (from, to) a path of allowed moves joins (as 0015's): one UPDATE may write several steps at once."""
    closure = set(pairs)
    while True:
        more = {(a, d) for a, b in closure for c, d in closure if b == c} - closure
        if not more:
            return closure
        closure |= more


def _transition_function(pairs: tuple[tuple[str, str], ...]) -> str:
    listed = ", ".join(f"('{a}', '{b}')" for a, b in sorted(reachable(pairs)))
    return f"""
    CREATE OR REPLACE FUNCTION payout_transition_allowed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (OLD.state, NEW.state) NOT IN ({listed}) THEN
            RAISE EXCEPTION 'payout %: % -> % is not a transition of the payout state machine',
                OLD.id, OLD.state, NEW.state USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """


# The CHECKs under the names PostgreSQL gave them when they were inline (<table>_<column>_check), which 0022, 0026
# and 0029 drop by.
_CHECKS = {
    "payouts_hold_code_check": "hold_code IN ('kyc_required', 'screening_hit', 'policy')",
    "payouts_hold_detail_check": "length(hold_detail) <= 2000",
    "payouts_destination_key_check": "destination_key ~ '^[0-9a-f]{64}$'",
    "payouts_hold_has_detail": "(hold_code IS NULL) = (hold_detail IS NULL)",
    "payouts_hold_has_time": "hold_code IS NULL OR held_at IS NOT NULL",
}

_PAYOUTS = [
    _transition_function(ALLOWED),
    """
    ALTER TABLE payouts
        ADD COLUMN IF NOT EXISTS hold_code text,
        ADD COLUMN IF NOT EXISTS hold_detail text,
        ADD COLUMN IF NOT EXISTS held_at timestamptz,
        ADD COLUMN IF NOT EXISTS destination_key text
    """,
    *(
        f"ALTER TABLE payouts DROP CONSTRAINT IF EXISTS {name}, ADD CONSTRAINT {name} CHECK ({rule}) NOT VALID"
        for name, rule in _CHECKS.items()
    ),
]

# After the ALTER's commit (row locks, not its table lock), and may run again (only what is still NULL).
# The key of the payouts of the longest window a policy may read (`MAX_WINDOW_S`), as the code computes it
# (`domain.compliance.gate.destination_key`): first use and per-destination sums know them from the start.
_BACKFILL = """
    UPDATE payouts SET destination_key = encode(sha256(convert_to(
        destination_type || '|' || destination_address || '|' || coalesce(destination_memo, ''), 'UTF8')), 'hex')
    WHERE destination_key IS NULL AND created_at > now() - interval '366 days'
"""

_PAYOUTS_INDEXES = {
    "payouts_player_destination": (
        "ON payouts (player_id, destination_key, created_at) WHERE destination_key IS NOT NULL"
    ),
    "payouts_destination_window": "ON payouts (destination_key, created_at) WHERE destination_key IS NOT NULL",
    "payouts_held": "ON payouts (hold_code, player_id) WHERE state = 'pending_approval'",
}

# The new tables, after the last commit: one transaction with the revision's stamp.
_UP = [
    """
    CREATE TABLE compliance_decisions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        payout_id text NOT NULL,
        claim_id text NOT NULL,
        player_id text NOT NULL,
        stage text NOT NULL CHECK (stage IN ('request', 'send', 'approval', 'verification')),
        action text NOT NULL CHECK (action IN ('allow', 'hold', 'refuse')),
        hold_code text CHECK (hold_code IN ('kyc_required', 'screening_hit', 'policy')),
        reasons jsonb NOT NULL CHECK (jsonb_typeof(reasons) = 'array'),
        policy_version bigint NOT NULL CHECK (policy_version >= 0),
        list_versions jsonb NOT NULL CHECK (jsonb_typeof(list_versions) = 'object'),
        decided_at timestamptz NOT NULL,
        CONSTRAINT compliance_decisions_hold_coded CHECK ((action = 'hold') = (hold_code IS NOT NULL))
    )
    """,
    "CREATE INDEX compliance_decisions_payout ON compliance_decisions (payout_id, id)",
    "CREATE INDEX compliance_decisions_player ON compliance_decisions (player_id, decided_at)",
    """
    CREATE FUNCTION compliance_decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'compliance decision %: decisions are evidence, never changed or deleted', OLD.id
            USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER compliance_decisions_append_only BEFORE UPDATE OR DELETE ON compliance_decisions
    FOR EACH ROW EXECUTE FUNCTION compliance_decisions_append_only()
    """,
    """
    CREATE TABLE screening_clearances (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        subject_kind text NOT NULL CHECK (subject_kind IN ('destination', 'player')),
        subject_key text NOT NULL CHECK (length(subject_key) BETWEEN 1 AND 200),
        source text NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
        entry_uid text NOT NULL CHECK (length(entry_uid) BETWEEN 1 AND 200),
        cleared_by text[] NOT NULL CHECK (cardinality(cleared_by) = 2 AND cleared_by[1] <> cleared_by[2]),
        payout_id text NOT NULL REFERENCES payouts (id),
        cleared_at timestamptz NOT NULL,
        UNIQUE (subject_kind, subject_key, source, entry_uid)
    )
    """,
    """
    CREATE TRIGGER screening_clearances_append_only BEFORE UPDATE OR DELETE ON screening_clearances
    FOR EACH ROW EXECUTE FUNCTION compliance_decisions_append_only()
    """,
]

_DOWN = [
    "DROP TABLE IF EXISTS screening_clearances",
    "DROP TABLE IF EXISTS compliance_decisions",
    "DROP FUNCTION IF EXISTS compliance_decisions_append_only()",
    "DROP INDEX IF EXISTS payouts_held",
    "DROP INDEX IF EXISTS payouts_destination_window",
    "DROP INDEX IF EXISTS payouts_player_destination",
    """
    ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_hold_has_time,
        DROP CONSTRAINT IF EXISTS payouts_hold_has_detail,
        DROP COLUMN IF EXISTS destination_key, DROP COLUMN IF EXISTS held_at, DROP COLUMN IF EXISTS hold_detail,
        DROP COLUMN IF EXISTS hold_code
    """,
    _transition_function(ALLOWED_0015),
]


def upgrade() -> None:
    for statement in _PAYOUTS:
        op.execute(statement)
    for name in _CHECKS:
        validate_constraint("payouts", name)
    op.execute(_BACKFILL)
    for name, definition in _PAYOUTS_INDEXES.items():
        create_index_concurrently(name, definition)
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
