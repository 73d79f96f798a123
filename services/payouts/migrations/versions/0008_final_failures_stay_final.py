"""A final failure stays final: it may only be confirmed paid by its provider, never attempted again.

A failed payout whose failure was final (`finished_at` set) published `PayoutFailed(final=True)`, and rewards
gave the claim's reservation back to the player's wallet. Moving it back to `approved` (an admin retry), to
`submitting`, or to a retryable `failed` would pay the player on the rail with the money still in their wallet.

- CHECK: a failed payout is either retryable (`next_attempt_at`, no `finished_at`) or final (`finished_at`, no
  `next_attempt_at`), never both nor neither; a payout still in progress has no `finished_at`.
- Trigger: a final failure moves only to `paid`/`returned` (the provider's late truth, which rewards flags), or
  stays a final failure. Frozen SQL.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    ALTER TABLE payouts ADD CONSTRAINT payouts_failure_retryable_or_final
        CHECK (state <> 'failed' OR ((next_attempt_at IS NULL) <> (finished_at IS NULL)))
    """,
    """
    ALTER TABLE payouts ADD CONSTRAINT payouts_in_progress_unfinished
        CHECK (state NOT IN ('requested','pending_approval','approved','submitting','submitted') OR finished_at IS NULL)
    """,
    """
    CREATE FUNCTION payout_final_failure_stays() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'payout % failed for good: its reservation was voided, it cannot become %',
            OLD.id, NEW.state USING ERRCODE = 'check_violation';
    END $$
    """,
    """
    CREATE TRIGGER payouts_final_failure_stays BEFORE UPDATE ON payouts
    FOR EACH ROW
    WHEN (OLD.state = 'failed' AND OLD.finished_at IS NOT NULL
          AND NOT (NEW.state IN ('paid', 'returned') OR (NEW.state = 'failed' AND NEW.finished_at IS NOT NULL)))
    EXECUTE FUNCTION payout_final_failure_stays()
    """,
]

_DOWN = [
    "DROP TRIGGER payouts_final_failure_stays ON payouts",
    "DROP FUNCTION payout_final_failure_stays()",
    "ALTER TABLE payouts DROP CONSTRAINT payouts_in_progress_unfinished",
    "ALTER TABLE payouts DROP CONSTRAINT payouts_failure_retryable_or_final",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
