"""The due payouts in the order the worker takes them: an index on that order, so a pass reads a batch, not the backlog.

The worker's pass (`_LOCK_DUE`, and `_CLAIM_SUBMIT` without the gate) takes the due payouts ordered by
`coalesce(lease_until, next_attempt_at, available_at)`, `LIMIT` a batch. The due rows were found through the three
partial indexes (`payouts_due`, `payouts_retries`, `payouts_leases`) and every one of them sorted to return a batch:
a pass cost grows with the backlog, 104 to 121 ms for 500 among 100,000 due payouts (the plan audit, docs/capacity.md),
at the moment the backlog is largest. This index holds every row the due test can select (approved, submitting, and
failed with a next attempt), in that order: the pass reads it in order and stops at the batch (1.3 ms there, with
statistics taken before the burst or after it).

Its predicate is implied by each arm of the due test (`state = 'approved'` by `state IN (...)`; a failed row's
`next_attempt_at <= now()` by `next_attempt_at IS NOT NULL`), so the planner may use it for that statement; failed
payouts that will never be tried again (no next attempt) stay out of it.

An expand step (one more index), built CONCURRENTLY outside the revision's transaction (issue 56): writes to
`payouts` never wait on it.

Revision ID: 0030
Revises: 0029
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import create_index_concurrently

revision = "0030"
down_revision = "0029"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_concurrently(
        "payouts_due_order",
        "ON payouts ((coalesce(lease_until, next_attempt_at, available_at))) "
        "WHERE state IN ('approved', 'submitting') OR (state = 'failed' AND next_attempt_at IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute("DROP INDEX payouts_due_order")
