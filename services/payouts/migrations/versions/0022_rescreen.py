"""Verified players re-screened when the sanctions lists change (docs/adr/0012-pay-only-whom-you-may.md).

- `kyc_verifications.rescreen_lease_until`: a re-screen job claimed the player until then (`FOR UPDATE SKIP LOCKED`
  and this lease: two replicas never fetch one player's identity at once; a crashed run's lease lapses).
- `kyc_verifications_verified`: the verified players with what the stale count and the claim read (their list
  versions and lease), so neither reads the table's other rows.
- `payouts.hold_code` and `compliance_decisions.hold_code` allow `screening_pending`: a verified player's payout
  waits for the re-screen of their identity against the newly loaded lists (no person's approval).

Online since issue 56: each widened CHECK is added under a new name `NOT VALID`, validated after a commit, and only
then swapped for the old one (renamed to its name); the index is built CONCURRENTLY. No write waits on a scan.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently, validate_constraint

revision = "0022"
down_revision = "0021"
phase = "expand"
branch_labels = None
depends_on = None

_CODES_0021 = "'kyc_required', 'screening_hit', 'policy'"
_CODES = "'kyc_required', 'screening_hit', 'screening_pending', 'policy'"

# 0021 declared both CHECKs inline: PostgreSQL named them <table>_hold_code_check, the name they keep.
_REPLACED = ("payouts", "compliance_decisions")

# Before the first commit, so they may run again.
_UP: list[str] = [
    "ALTER TABLE kyc_verifications ADD COLUMN IF NOT EXISTS rescreen_lease_until timestamptz",
    *(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_hold_code_new, "
        f"ADD CONSTRAINT {table}_hold_code_new CHECK (hold_code IN ({_CODES})) NOT VALID"
        for table in _REPLACED
    ),
]

# After the last commit, with the revision's stamp: brief locks, no scan.
_SWAP: list[str] = [
    statement
    for table in _REPLACED
    for statement in (
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_hold_code_check",
        f"ALTER TABLE {table} RENAME CONSTRAINT {table}_hold_code_new TO {table}_hold_code_check",
    )
]

_DOWN: list[str] = [
    # A screening_pending hold goes back to what 0021 knew: a screening hold for two people (fail closed).
    """
    UPDATE payouts SET hold_code = 'screening_hit', approval_policy = 'dual'
    WHERE hold_code = 'screening_pending'
    """,
    f"""
    ALTER TABLE compliance_decisions DROP CONSTRAINT compliance_decisions_hold_code_check,
        ADD CONSTRAINT compliance_decisions_hold_code_check
            CHECK (hold_code IN ({_CODES_0021})) NOT VALID
    """,
    f"""
    ALTER TABLE payouts DROP CONSTRAINT payouts_hold_code_check,
        ADD CONSTRAINT payouts_hold_code_check CHECK (hold_code IN ({_CODES_0021}))
    """,
    "DROP INDEX IF EXISTS kyc_verifications_verified",
    "ALTER TABLE kyc_verifications DROP COLUMN IF EXISTS rescreen_lease_until",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    for table in _REPLACED:
        validate_constraint(table, f"{table}_hold_code_new")
    create_index_concurrently(
        "kyc_verifications_verified",
        "ON kyc_verifications (player_id) INCLUDE (screening_versions, rescreen_lease_until) WHERE status = 'verified'",
    )
    for statement in _SWAP:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
