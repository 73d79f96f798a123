"""The destination key's CHECK: the same rule, in a form PostgreSQL evaluates at under a third of the cost.

`payouts.destination_key` must be 64 lowercase hex digits (a SHA-256, `prizeflow_destination_key`). The rule was the
regular expression `^[0-9a-f]{64}$`, and PostgreSQL evaluates every CHECK of a row at each of its writes: a payout
is written three times (created, claimed, its answer recorded), and the counted repetition cost ~7 µs a write (the
three writes of 20,000 payouts in batched statements: 1.76 s with it, 1.33 s with no such CHECK, 1.45 s with this
form; docs/capacity.md).
The new form, `length(destination_key) = 64 AND destination_key !~ '[^0-9a-f]'`, accepts exactly the same values
(64 characters, none outside 0-9a-f).

The new constraint is added NOT VALID (enforced on every write from then on), committed, and validated in a
transaction of its own (a scan under SHARE UPDATE EXCLUSIVE: writes go on; until issue 56 the scan ran in the
revision's transaction, under the ADD's ACCESS EXCLUSIVE lock, and every write to `payouts` waited on it), then the
old one dropped: no moment without the rule. Each step may run again (a retry after a lost lock wait). Dropping a
constraint relaxes nothing here (the new one holds the same rule), so this is an expand step.

Downgrade: the regular expression again, the same way.

Revision ID: 0029
Revises: 0028
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0029"
down_revision = "0028"
phase = "expand"
branch_labels = None
depends_on = None

_RULE = "length(destination_key) = 64 AND destination_key !~ '[^0-9a-f]'"
_REGEX = "destination_key ~ '^[0-9a-f]{64}$'"

_ADD = (
    "ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_destination_key_hex, "
    f"ADD CONSTRAINT payouts_destination_key_hex CHECK ({_RULE}) NOT VALID"
)
_DOWN = [
    f"ALTER TABLE payouts ADD CONSTRAINT payouts_destination_key_check CHECK ({_REGEX}) NOT VALID",
    "ALTER TABLE payouts VALIDATE CONSTRAINT payouts_destination_key_check",
    "ALTER TABLE payouts DROP CONSTRAINT payouts_destination_key_hex",
]


def upgrade() -> None:
    op.execute(_ADD)
    validate_constraint("payouts", "payouts_destination_key_hex")
    op.execute("ALTER TABLE payouts DROP CONSTRAINT IF EXISTS payouts_destination_key_check")


def downgrade() -> None:
    for statement in _DOWN:
        op.execute(statement)
