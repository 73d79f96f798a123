"""The PayPal Payouts rail's books (issue 58): which batch each payout went in, and the batch as it was sent.

PayPal has no lookup by our ids: a batch is found by the `payout_batch_id` PayPal answers, and a lost answer is
recovered only by sending the same request again under the same `PayPal-Request-Id` (PayPal answers the first
batch). So the rail writes the batch here, and commits, before it sends it:

- `paypal_batches` (provider, sender_batch_id): the request exactly as sent (`body`, without which a lost answer
  could not be asked again), PayPal's `payout_batch_id` once answered (CHECK: then `sent`).
- `paypal_items` (provider, idempotency_key): the payout's `sender_item_id` (the key itself), its batch, what it
  pays, and PayPal's `payout_item_id` / `transaction_id` once a sync read them (the statement's lines name those).
  One key is in one batch (the primary key): a payout is never sent in two.

Downgrade: the tables go (a batch in flight is then found only in PayPal's dashboard: downgrade after the rail
is drained).

Revision ID: 0033
Revises: 0032
"""

from __future__ import annotations

from alembic import op

revision = "0033"
down_revision = "0032"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE paypal_batches (
        provider text NOT NULL,
        sender_batch_id text NOT NULL CHECK (length(sender_batch_id) BETWEEN 1 AND 127),
        body jsonb NOT NULL,
        payout_batch_id text,
        state text NOT NULL DEFAULT 'unsent' CHECK (state IN ('unsent', 'sent')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, sender_batch_id),
        CONSTRAINT paypal_batches_answered CHECK ((payout_batch_id IS NULL) = (state = 'unsent'))
    )
    """,
    "CREATE UNIQUE INDEX paypal_batches_one_batch ON paypal_batches (provider, payout_batch_id)",
    """
    CREATE TABLE paypal_items (
        provider text NOT NULL,
        idempotency_key text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 63),
        payout_id text NOT NULL,
        sender_batch_id text NOT NULL,
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        payout_item_id text,
        transaction_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, idempotency_key),
        FOREIGN KEY (provider, sender_batch_id) REFERENCES paypal_batches (provider, sender_batch_id)
            ON DELETE CASCADE
    )
    """,
    "CREATE INDEX paypal_items_batch ON paypal_items (provider, sender_batch_id)",
    "CREATE UNIQUE INDEX paypal_items_item ON paypal_items (provider, payout_item_id)",
    "CREATE INDEX paypal_items_transaction ON paypal_items (provider, transaction_id)",
]

_DOWN = ["DROP TABLE paypal_items", "DROP TABLE paypal_batches"]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
