"""Telegram rail books: one row per payout sent as a gift, written BEFORE `sendGift` is called.

Telegram has no idempotency key for `sendGift` and answers only `True`; this row is how the rail never sends twice
and how an unknown outcome is settled (matched to the bot's outgoing Star transactions). See docs/adr/0009.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
phase = "expand"
branch_labels = None
depends_on = None

DDL = (
    # state: sending (the call was or is being made; outcome not settled), sent (its outgoing Star transaction
    # was found: `transaction_id`; `answered` says Telegram also said True), refused (Telegram did not carry it
    # out: it refused, or the transactions show no such gift `settle_after_s` after a call of unknown outcome).
    """
    CREATE TABLE telegram_gift_sends (
        payout_id text PRIMARY KEY,
        idempotency_key text NOT NULL UNIQUE,
        provider text NOT NULL,
        user_id bigint NOT NULL CHECK (user_id > 0),
        gift_id text NOT NULL,
        star_count integer NOT NULL CHECK (star_count > 0),
        state text NOT NULL CHECK (state IN ('sending', 'sent', 'refused')),
        answered boolean NOT NULL DEFAULT false,
        transaction_id text UNIQUE,
        sends integer NOT NULL DEFAULT 1 CHECK (sends >= 1),
        error_code text,
        started_at timestamptz NOT NULL DEFAULT now(),
        -- the first call's time, never moved by a send again: a late transaction of any earlier call is still
        -- matched (from here), never left to become a second gift
        first_started_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        -- sent means matched: the payout is paid only with Telegram's own transaction id in hand
        CHECK ((state = 'sent') = (transaction_id IS NOT NULL))
    )""",
    # At most one unsettled gift per player and price: an unknown outcome is matched to a transaction of that
    # player and price, so two in flight at once could not be told apart.
    """
    CREATE UNIQUE INDEX telegram_gift_sends_one_in_flight
        ON telegram_gift_sends (provider, user_id, star_count) WHERE state = 'sending'""",
    # Where each provider's scan of getStarTransactions resumes: every transaction below `floor` is too old to
    # settle anything. Advanced page by page, so a scan cut short (a timeout, a restart) keeps its progress.
    """
    CREATE TABLE telegram_star_scans (
        provider text PRIMARY KEY,
        floor integer NOT NULL DEFAULT 0 CHECK (floor >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
    )""",
)


def upgrade() -> None:
    for statement in DDL:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE telegram_star_scans")
    op.execute("DROP TABLE telegram_gift_sends")
