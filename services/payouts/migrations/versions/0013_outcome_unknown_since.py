"""Since when a payout's outcome has been unknown: what the "awaiting an operator" gauge and alert count.

A payout whose provider call got no definitive answer (`timeout_unknown_outcome`) may be at the provider; it is
never failed blind, it waits (`submitted`) for a status sync to find it. Past its rail's operator threshold only an
operator can decide it (docs/runbooks/payouts-awaiting-operator.md). `last_error_code` cannot tell that apart: it
keeps the last error even after the provider answered. `outcome_unknown_since` is set by the first
unknown-outcome error, kept while errors stay unknown, and cleared by any provider answer, a known error or a final
state.

- Backfill: payouts already waiting in `submitted` on an unknown outcome, since their submission (the alert would
  rather fire on an old one than miss it).
- CHECK (NOT VALID: existing rows are NULL or backfilled `submitted` ones, so no full-table scan under the lock;
  every write from now on is checked): a settled payout never awaits an operator.
- Partial index: the reconciler's count reads these few rows, whatever their state, not the table.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    "ALTER TABLE payouts ADD COLUMN outcome_unknown_since timestamptz",
    """
    UPDATE payouts SET outcome_unknown_since = coalesce(submitted_at, updated_at)
    WHERE state = 'submitted' AND last_error_code = 'timeout_unknown_outcome'
    """,
    """
    ALTER TABLE payouts ADD CONSTRAINT payouts_unknown_outcome_unsettled
        CHECK (outcome_unknown_since IS NULL
               OR (finished_at IS NULL AND state NOT IN ('paid', 'cancelled', 'rejected', 'returned'))) NOT VALID
    """,
    "CREATE INDEX payouts_outcome_unknown ON payouts (outcome_unknown_since) WHERE outcome_unknown_since IS NOT NULL",
]

_DOWN = [
    "DROP INDEX payouts_outcome_unknown",
    "ALTER TABLE payouts DROP CONSTRAINT payouts_unknown_outcome_unsettled",
    "ALTER TABLE payouts DROP COLUMN outcome_unknown_since",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
