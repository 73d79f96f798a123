"""TON wallet provider books: the payouts it holds and one row per wallet message built.

One message in flight per provider (its wallet): a seqno is used by one message at a time, and a message
still able to land (before valid_until + margin) is never replaced, only resent.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
phase = "expand"
branch_labels = None
depends_on = None

RAW = r"'^(0|-1):[0-9a-f]{64}$'"
HEX = r"'^[0-9a-f]{64}$'"

DDL = (
    f"""
    CREATE TABLE ton_payouts (
        provider        varchar(64)  NOT NULL,
        idempotency_key varchar(255) NOT NULL,
        payout_id       varchar(128) NOT NULL,
        asset           varchar(16)  NOT NULL,
        amount          bigint       NOT NULL CHECK (amount > 0),
        destination     varchar(70)  NOT NULL CHECK (destination ~ {RAW}),
        bounce          boolean      NOT NULL,
        state           varchar(16)  NOT NULL CHECK (state IN ('queued', 'sending', 'paid', 'failed')),
        messages        integer      NOT NULL DEFAULT 0 CHECK (messages >= 0),
        not_before      timestamptz  NOT NULL DEFAULT now(),
        message_hash    char(64)     CHECK (message_hash ~ {HEX}),
        tx_hash         char(64)     CHECK (tx_hash ~ {HEX}),
        error_code      varchar(64),
        retryable       boolean,
        reported        boolean      NOT NULL DEFAULT false,
        detail          text,
        created_at      timestamptz  NOT NULL DEFAULT now(),
        updated_at      timestamptz  NOT NULL DEFAULT now(),
        PRIMARY KEY (provider, idempotency_key),
        CONSTRAINT ton_payouts_one_per_payout UNIQUE (provider, payout_id),
        CONSTRAINT ton_payouts_paid_has_hash
            CHECK (state <> 'paid' OR (message_hash IS NOT NULL AND tx_hash IS NOT NULL)),
        CONSTRAINT ton_payouts_failed_has_code
            CHECK (state <> 'failed' OR (error_code IS NOT NULL AND retryable IS NOT NULL))
    )""",
    "CREATE INDEX ton_payouts_queue_idx ON ton_payouts (provider, not_before) WHERE state = 'queued'",
    f"""
    CREATE TABLE ton_messages (
        request_id      varchar(128) PRIMARY KEY,
        provider        varchar(64)  NOT NULL,
        idempotency_key varchar(255) NOT NULL,
        payout_id       varchar(128) NOT NULL,
        wallet          varchar(70)  NOT NULL CHECK (wallet ~ {RAW}),
        seqno           bigint       NOT NULL CHECK (seqno >= 0 AND seqno < 4294967296),
        valid_until     bigint       NOT NULL CHECK (valid_until > 0),
        request         text         NOT NULL,
        sign_requests   integer      NOT NULL DEFAULT 1,
        signed_boc      text,
        message_hash    char(64)     CHECK (message_hash ~ {HEX}),
        state           varchar(20)  NOT NULL
                        CHECK (state IN ('awaiting_signature', 'external', 'signed', 'landed', 'expired', 'refused')),
        sends           integer      NOT NULL DEFAULT 0,
        error_code      varchar(64),
        detail          text,
        created_at      timestamptz  NOT NULL DEFAULT now(),
        updated_at      timestamptz  NOT NULL DEFAULT now(),
        FOREIGN KEY (provider, idempotency_key) REFERENCES ton_payouts (provider, idempotency_key),
        CONSTRAINT ton_messages_signed_has_boc
            CHECK (state NOT IN ('signed', 'landed') OR (signed_boc IS NOT NULL AND message_hash IS NOT NULL))
    )""",
    # The rule the driver relies on: one message in flight per wallet, and one landed message per seqno.
    """CREATE UNIQUE INDEX ton_messages_one_in_flight ON ton_messages (provider)
       WHERE state IN ('awaiting_signature', 'external', 'signed')""",
    "CREATE UNIQUE INDEX ton_messages_seqno_landed ON ton_messages (wallet, seqno) WHERE state = 'landed'",
    "CREATE INDEX ton_messages_payout_idx ON ton_messages (provider, idempotency_key)",
)


def upgrade() -> None:
    for ddl in DDL:
        op.execute(ddl)


def downgrade() -> None:
    for table in ("ton_messages", "ton_payouts"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
