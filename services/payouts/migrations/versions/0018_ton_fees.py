"""TON network fees in the rail's books: what each paid payout's transactions cost, in nanotons.

- `ton_batches.external_fee` / `internal_fee`: the fee of a highload batch's external transaction (recorded when
  it is seen landed) and of its internal one (the transaction holding the batch's out-messages);
- `ton_batch_items.fee`: the item's share of both, split over the items whose out-message the batch's internal
  transaction carried (`statement.fee_share`, in position order), set when those out-messages are read;
- `ton_payouts.fee`: the fee the payout carries, reported as the paid result's fee (payouts.fee_amount): a wallet
  v4r2 message's whole transaction fee, or its batch item's share.

NULL: not known (a payout paid before this revision, or not paid); the provider then reports no fee.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    "ALTER TABLE ton_payouts ADD COLUMN fee bigint CONSTRAINT ton_payouts_fee_nonnegative CHECK (fee >= 0)",
    "ALTER TABLE ton_batch_items ADD COLUMN fee bigint CONSTRAINT ton_batch_items_fee_nonnegative CHECK (fee >= 0)",
    """ALTER TABLE ton_batches
         ADD COLUMN external_fee bigint CONSTRAINT ton_batches_external_fee_nonnegative CHECK (external_fee >= 0),
         ADD COLUMN internal_fee bigint CONSTRAINT ton_batches_internal_fee_nonnegative CHECK (internal_fee >= 0)""",
]

_DOWN = [
    "ALTER TABLE ton_batches DROP COLUMN internal_fee, DROP COLUMN external_fee",
    "ALTER TABLE ton_batch_items DROP COLUMN fee",
    "ALTER TABLE ton_payouts DROP COLUMN fee",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
