"""What the compliance gate's allow at request time was made with (issue 46): `payouts.gate_stamp`.

The worker gates an approved payout again before its first send. When nothing the request's decision depended on
has changed since — the active risk policy's version, the loaded sanctions lists' versions and the player's stored
verification and screening — that decision stands and is recorded again at send (`request_decision_stands`), instead
of being recomputed from the window sums (three index scans per payout, the send stage's largest cost). Anything
changed recomputes the whole decision as before.

- `payouts.gate_stamp` (text, nullable): `v<policy version>:<digest of the list versions and the player's facts>`,
  written with a payout the gate allowed at request; NULL for every other payout (held, created with the gate off,
  created before this step: they are all recomputed at send). A hold clears it (a released payout is recomputed).

Online since issue 56: the column is added plain and its CHECK `NOT VALID`, validated after a commit: writes to
`payouts` never wait on a scan.

Downgrade: the column goes (the code before this step never reads it, and recomputes every send).

Revision ID: 0028
Revises: 0027
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0028"
down_revision = "0027"
phase = "expand"
branch_labels = None
depends_on = None

# Before the commit, so it may run again; the CHECK under the name PostgreSQL gave it when it was inline.
_UP = [
    "ALTER TABLE payouts ADD COLUMN IF NOT EXISTS gate_stamp text, DROP CONSTRAINT IF EXISTS payouts_gate_stamp_check, "
    "ADD CONSTRAINT payouts_gate_stamp_check CHECK (length(gate_stamp) BETWEEN 1 AND 128) NOT VALID"
]
_DOWN = ["ALTER TABLE payouts DROP COLUMN IF EXISTS gate_stamp"]


def upgrade() -> None:
    for statement in _UP:
        op.execute(statement)
    validate_constraint("payouts", "payouts_gate_stamp_check")


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
