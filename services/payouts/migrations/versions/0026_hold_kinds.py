"""Hold codes in a reference table (issue 45): a new hold kind is one row here, never a CHECK dropped and re-added.

- `payout_hold_kinds (code)`: every code the gate may hold a payout with, one row per kind of
  `prizeflow_contracts.holds.PAYOUT_HOLD_KINDS` (a test holds the two equal). Seeded with today's four.
- `payouts.hold_code` and `compliance_decisions.hold_code` reference it (foreign keys) instead of the CHECKs 0021 and
  0022 re-created per kind. The rows already there keep their codes: every one of them is in the table.

Adding a kind later: `INSERT INTO payout_hold_kinds VALUES ('<code>')` in its migration (an expand step), and the
kind's row in `PAYOUT_HOLD_KINDS`. Expand: the code before this step writes only the codes seeded here.

Downgrade: the CHECKs of 0022 come back (a code added since is not in them: such a row fails the downgrade, as it
must), the references and the table go.

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
phase = "expand"
branch_labels = None
depends_on = None

_SEEDED = ("kyc_required", "screening_hit", "screening_pending", "policy")
_CODES_0022 = ", ".join(f"'{c}'" for c in _SEEDED)

_UP: list[str] = [
    """
    CREATE TABLE payout_hold_kinds (
        code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*$')
    )
    """,
    """
    INSERT INTO payout_hold_kinds (code)
    VALUES ('kyc_required'), ('screening_hit'), ('screening_pending'), ('policy')
    """,
    """
    ALTER TABLE payouts DROP CONSTRAINT payouts_hold_code_check,
        ADD CONSTRAINT payouts_hold_code_known FOREIGN KEY (hold_code) REFERENCES payout_hold_kinds (code)
    """,
    """
    ALTER TABLE compliance_decisions DROP CONSTRAINT compliance_decisions_hold_code_check,
        ADD CONSTRAINT compliance_decisions_hold_code_known
            FOREIGN KEY (hold_code) REFERENCES payout_hold_kinds (code)
    """,
]

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


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
