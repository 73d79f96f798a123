"""A claim records which shard of its asset's payout clearing account its reservation credits (issue 56).

The payout clearing account of an asset was one row every claim batch locked: a transaction holding it (the poll of
payout outcomes, an operator's session) held up every claim in the asset, and past the lock timeout the whole batch
answered 503. The clearing side is now `CLEARING_SHARDS` accounts per asset (`payout_clearing/platform/<asset>` is
shard 0, `platform.<k>` the others); a claim batch takes whichever is free without waiting, and the claim keeps its
shard so that its payout's outcome posts, voids or settles the same account.

`claims.clearing_shard`: 0 for every claim written before (their reservations credit shard 0, the account they
always credited), and what the previous release's pods write during a rolling deploy (the default: it reserves on
shard 0 and settles there). A constant default adds the column without rewriting the table (PostgreSQL ≥ 11); its
CHECK is added NOT VALID and validated after a commit, so writes to `claims` never wait on a scan.

Downgrade: refused while a claim is approved or held on a shard past 0 (it could be settled by nothing then);
once none is, the column goes.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0016"
down_revision = "0015"
phase = "expand"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE claims ADD COLUMN IF NOT EXISTS clearing_shard smallint NOT NULL DEFAULT 0")
    op.execute(
        "ALTER TABLE claims DROP CONSTRAINT IF EXISTS claims_clearing_shard_check, "
        "ADD CONSTRAINT claims_clearing_shard_check CHECK (clearing_shard BETWEEN 0 AND 63) NOT VALID"
    )
    validate_constraint("claims", "claims_clearing_shard_check")


# A claim still reserved on a shard past 0 could no longer be posted or voided once the column is gone (its pending
# transfer credits that shard; the code before this revision rebuilds it on shard 0): refused, saying what to do.
_REFUSE_WHILE_RESERVED = """
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM claims WHERE clearing_shard <> 0 AND status IN ('approved', 'held')) THEN
            RAISE EXCEPTION 'claims are reserved on clearing shards past 0: set REWARDS_CLEARING_SHARDS=1 and '
                'downgrade once none is approved or held there (docs/runbooks/upgrade.md)';
        END IF;
    END $$
"""


def downgrade() -> None:
    op.execute(_REFUSE_WHILE_RESERVED)
    op.execute("ALTER TABLE claims DROP COLUMN clearing_shard")
