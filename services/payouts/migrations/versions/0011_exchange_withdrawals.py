"""The crypto_exchange rail's own record of each withdrawal it asked for, written BEFORE the exchange is called.

Exchanges have no idempotency for withdrawals: a request whose answer was lost may have moved the money. A row in
`submitting` says "asked, outcome unknown": the rail then never asks again, it only looks for the withdrawal in the
exchange's history (by client id, or by address, amount and time), and leaves it to an operator while it cannot
find it. `not_sent` (the exchange refused, or the request never left) is the only state a new request may leave.
Frozen SQL.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE exchange_withdrawals (
        payout_id text PRIMARY KEY,
        provider text NOT NULL,
        idempotency_key text NOT NULL CONSTRAINT exchange_withdrawals_key UNIQUE,
        client_id text NOT NULL,
        state text NOT NULL CHECK (state IN ('submitting', 'sent', 'not_sent')),
        asset text NOT NULL,
        amount bigint NOT NULL CHECK (amount > 0),
        currency text NOT NULL,
        network text NOT NULL,
        address text NOT NULL,
        memo text,
        withdrawal_id text,
        requests integer NOT NULL DEFAULT 0 CHECK (requests >= 0),
        submitted_at timestamptz NOT NULL,
        resolved_by text,
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT exchange_withdrawals_sent_has_id CHECK ((state = 'sent') = (withdrawal_id IS NOT NULL))
    )
    """,
    # One exchange withdrawal settles one payout: a reconciliation never adopts a withdrawal another row holds.
    "CREATE UNIQUE INDEX exchange_withdrawals_one_owner ON exchange_withdrawals (provider, withdrawal_id)"
    " WHERE withdrawal_id IS NOT NULL",
    "CREATE INDEX exchange_withdrawals_unknown ON exchange_withdrawals (provider, submitted_at)"
    " WHERE state = 'submitting'",
]

_DOWN = ["DROP TABLE exchange_withdrawals"]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
