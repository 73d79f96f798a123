"""TON network fees in the rail's books: what each paid payout's transactions cost, in nanotons.

- `ton_batches.external_fee` / `internal_fee`: the fee of a highload batch's external transaction (recorded when
  it is seen landed) and of its internal one (the transaction holding the batch's out-messages);
- `ton_batch_items.fee`: the item's share of both, split over the items whose out-message the batch's internal
  transaction carried (`statement.fee_share`, in position order), set when those out-messages are read;
- `ton_payouts.fee`: the fee the payout carries, reported as the paid result's fee (payouts.fee_amount): a wallet
  v4r2 message's whole transaction fee, or its batch item's share.

NULL: not known (a payout paid before this revision, or not paid); the provider then reports no fee.

Online since issue 56: each column is added plain and its CHECK `NOT VALID`, validated after a commit (the rail's
writes never wait on a scan); what precedes the validations may run again.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

from prizeflow_runtime.schema_history.online_0001 import validate_constraint

revision = "0018"
down_revision = "0017"
phase = "expand"
branch_labels = None
depends_on = None

# (table, column, its CHECK's name): the names the inline CHECKs had, so the schema is the one they made.
_FEES = (
    ("ton_payouts", "fee", "ton_payouts_fee_nonnegative"),
    ("ton_batch_items", "fee", "ton_batch_items_fee_nonnegative"),
    ("ton_batches", "external_fee", "ton_batches_external_fee_nonnegative"),
    ("ton_batches", "internal_fee", "ton_batches_internal_fee_nonnegative"),
)

_UP = [
    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} bigint, DROP CONSTRAINT IF EXISTS {name}, "
    f"ADD CONSTRAINT {name} CHECK ({column} >= 0) NOT VALID"
    for table, column, name in _FEES
]

_DOWN = [
    "ALTER TABLE ton_batches DROP COLUMN internal_fee, DROP COLUMN external_fee",
    "ALTER TABLE ton_batch_items DROP COLUMN fee",
    "ALTER TABLE ton_payouts DROP COLUMN fee",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)
    for table, _column, name in _FEES:
        validate_constraint(table, name)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
