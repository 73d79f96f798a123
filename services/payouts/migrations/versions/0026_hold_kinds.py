"""Hold codes in a reference table (issue 45): a new hold kind is one row here, never a CHECK dropped and re-added.

- `payout_hold_kinds (code)`: every code the gate may hold a payout with, one row per kind of
  `prizeflow_contracts.holds.PAYOUT_HOLD_KINDS` (a test holds the two equal). Seeded with today's four.
- `payouts.hold_code` and `compliance_decisions.hold_code` reference it (foreign keys) instead of the CHECKs 0021 and
  0022 re-created per kind. The rows already there keep their codes: every one of them is in the table.

Adding a kind later: `INSERT INTO payout_hold_kinds VALUES ('<code>')` in its migration (an expand step), and the
kind's row in `PAYOUT_HOLD_KINDS`. Expand: the code before this step writes only the codes seeded here.

Online since issue 56: the foreign keys are added `NOT VALID` and validated after a commit, and only then the CHECKs
they replace dropped (no moment without the rule): writes to `payouts` never wait on a scan.

Downgrade: the CHECKs of 0022 come back (a code added since is not in them: such a row fails the downgrade, as it
must), the references and the table go.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0026"
down_revision = "0025"
phase = "expand"
branch_labels = None
depends_on = None

_SEEDED = ("kyc_required", "screening_hit", "screening_pending", "policy")
_CODES_0022 = ", ".join(f"'{c}'" for c in _SEEDED)
_REFERENCING = ("payouts", "compliance_decisions")

# Before the first commit, so they may run again.
_UP: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS payout_hold_kinds (
        code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$')
    )
    """,
    """
    INSERT INTO payout_hold_kinds (code)
    VALUES ('kyc_required'), ('screening_hit'), ('screening_pending'), ('policy')
    ON CONFLICT (code) DO NOTHING
    """,
    *(
        f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_hold_code_known, "
        f"ADD CONSTRAINT {table}_hold_code_known FOREIGN KEY (hold_code) REFERENCES payout_hold_kinds (code) NOT VALID"
        for table in _REFERENCING
    ),
]

# After the last commit, with the revision's stamp: each CHECK goes once its reference holds every row.
_CHECKS_DROPPED: list[str] = [f"ALTER TABLE {table} DROP CONSTRAINT {table}_hold_code_check" for table in _REFERENCING]

_DOWN: list[str] = [
    f"""
    ALTER TABLE compliance_decisions DROP CONSTRAINT IF EXISTS compliance_decisions_hold_code_known,
        ADD CONSTRAINT compliance_decisions_hold_code_check CHECK (hold_code IN ({_CODES_0022}))
    """,
    f"""
    ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_hold_code_known,
        ADD CONSTRAINT payouts_hold_code_check CHECK (hold_code IN ({_CODES_0022}))
    """,
    "DROP TABLE IF EXISTS payout_hold_kinds",
]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    for table in _REFERENCING:
        validate_constraint(table, f"{table}_hold_code_known")
    for statement in _CHECKS_DROPPED:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
