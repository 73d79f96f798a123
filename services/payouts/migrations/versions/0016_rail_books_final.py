"""The rails' own books keep their final states: a late or replayed provider answer never moves a row back.

Each rail records what its provider did in its own table, and every update there already names the state it
expects (compare-and-set). This makes the database refuse the rest, whoever writes:

- `ton_payouts`: `paid` stays `paid` with the same message and transaction; a failure that is not retryable moves
  only to `paid` (a message of ours found landed after all: the chain's truth) or stays that failure. CHECK: a
  payout is never sent bounceable (a bounce returns the money after the transaction that reads as paid).
- `ton_messages`, `ton_batches`: `landed` and `refused` stay; `ton_batch_items`: a settled item (anything but
  `in_flight`) keeps its state.
- `exchange_withdrawals`: `sent` stays `sent` with the same withdrawal id (a withdrawal the exchange reverses later
  is reported by the sync; the book never says "not sent", which would let it be asked for again).
- `telegram_gift_sends`: `sent` stays `sent` with the same transaction (a refunded gift is reported `returned` by
  the sync; the row never says "refused", which would let it be sent again).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
phase = "expand"
branch_labels = None
depends_on = None

# table -> the WHEN condition of its trigger (the row's final state, and what it may not become).
FINAL: dict[str, str] = {
    "ton_payouts": """(OLD.state = 'paid' AND (NEW.state <> 'paid' OR NEW.tx_hash IS DISTINCT FROM OLD.tx_hash
                        OR NEW.message_hash IS DISTINCT FROM OLD.message_hash))
                   OR (OLD.state = 'failed' AND NOT OLD.retryable
                       AND NOT (NEW.state = 'paid' OR (NEW.state = 'failed' AND NOT NEW.retryable)))""",
    "ton_messages": "OLD.state IN ('landed', 'refused') AND NEW.state <> OLD.state",
    "ton_batches": "OLD.state IN ('landed', 'refused') AND NEW.state <> OLD.state",
    "ton_batch_items": "OLD.state <> 'in_flight' AND NEW.state <> OLD.state",
    "exchange_withdrawals": """OLD.state = 'sent'
                   AND (NEW.state <> 'sent' OR NEW.withdrawal_id IS DISTINCT FROM OLD.withdrawal_id)""",
    "telegram_gift_sends": """OLD.state = 'sent'
                   AND (NEW.state <> 'sent' OR NEW.transaction_id IS DISTINCT FROM OLD.transaction_id)""",
}

_UP = [
    "ALTER TABLE ton_payouts ADD CONSTRAINT ton_payouts_never_bounceable CHECK (NOT bounce)",
    """
    CREATE FUNCTION rail_book_final_state_stays() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '%: a row in its final state % cannot become %', TG_TABLE_NAME, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END $$
    """,
    *(
        f"""
    CREATE TRIGGER {table}_final_state_stays BEFORE UPDATE ON {table}
    FOR EACH ROW WHEN ({when})
    EXECUTE FUNCTION rail_book_final_state_stays()
    """
        for table, when in FINAL.items()
    ),
]

_DOWN = [
    *(f"DROP TRIGGER {table}_final_state_stays ON {table}" for table in FINAL),
    "DROP FUNCTION rail_book_final_state_stays()",
    "ALTER TABLE ton_payouts DROP CONSTRAINT ton_payouts_never_bounceable",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
