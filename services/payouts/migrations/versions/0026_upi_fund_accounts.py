"""The upi rail's memory of each destination at RazorpayX (issue 47): the contact and fund account made for it once,
and whether the account was validated before a first payout went to it.

- `upi_fund_accounts` (provider, destination) -> `contact_id`, `fund_account_id`, the validation asked for and what
  it found (`validation`: none | created | active | invalid | failed). `destination` is the address's one spelling
  (a lower-case VPA or `IFSC/account number`): the rail's key at the provider, which needs it to pay.
- Only `active` lets a payout be sent (CHECK: an `active` row names its validation).

Downgrade: the table goes (the rail makes the contact and fund account again: RazorpayX answers the same details
with the existing ones).

Revision ID: 0026
Revises: 0025
"""

from __future__ import annotations

from alembic import op

revision = "0026"
down_revision = "0025"
phase = "expand"
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE TABLE upi_fund_accounts (
        provider text NOT NULL,
        destination text NOT NULL CHECK (length(destination) BETWEEN 3 AND 128),
        contact_id text NOT NULL,
        fund_account_id text NOT NULL,
        validation_id text,
        validation text NOT NULL DEFAULT 'none'
            CHECK (validation IN ('none', 'created', 'active', 'invalid', 'failed')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, destination),
        CONSTRAINT upi_fund_accounts_validated CHECK (validation = 'none' OR validation_id IS NOT NULL)
    )
    """,
    "CREATE UNIQUE INDEX upi_fund_accounts_one_owner ON upi_fund_accounts (provider, fund_account_id)",
]

_DOWN = ["DROP TABLE upi_fund_accounts"]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
