"""TON highload wallet v3 batches: one row per batch message built, one row per payout it carries.

A highload message has no seqno: its replay protection is its query id (in the wallet's processed sets) and its
life is `created_at + timeout`. What the database holds for money's sake:

- `ton_batch_items_one_live`: a payout is in at most ONE live batch message (an item is `in_flight` from the
  batch's build until the batch is read landed, expired or refused);
- `ton_batch_items_one_destination`: one batch pays a destination at most once per asset (the out-messages of the
  batch transaction are read back to payouts by destination and asset: two alike could not be told apart);
- `ton_batches_query_id_free` (trigger): a wallet's query id is used again only once every earlier message with
  it can neither land (`created_at + timeout`) nor still sit in the wallet's processed sets (those rotate every
  timeout: four timeouts after `created_at` it is gone), by the message's own `created_at`; the query id is the
  one its per-wallet sequence number names (CHECK), the sequence is unique per wallet;
- `ton_batch_items_not_in_a_v4r2_message` / `ton_messages_not_in_a_batch` (triggers): a payout is never both in a
  live batch message and in a live wallet v4r2 message (a provider switched between versions);
- a paid item names the out-message that paid it; a landed batch names its external transaction.

`ton_payouts.solo`: a payout requeued after the signer refused its batch is retried alone, so that one payout's
refusal (a denied destination, a cap) never fails the others.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
phase = "expand"
branch_labels = None
depends_on = None

RAW = r"'^(0|-1):[0-9a-f]{64}$'"
HEX = r"'^[0-9a-f]{64}$'"
CYCLE = 8192 * 1023  # distinct highload v3 query ids (shift 0..8191, bit number 0..1022)
LIVE = "('awaiting_signature', 'external', 'signed')"

_UP = [
    "ALTER TABLE ton_payouts ADD COLUMN solo boolean NOT NULL DEFAULT false",
    f"""
    CREATE TABLE ton_batches (
        request_id       varchar(128) PRIMARY KEY,
        provider         varchar(64)  NOT NULL,
        wallet           varchar(70)  NOT NULL CHECK (wallet ~ {RAW}),
        query_seqno      bigint       NOT NULL CHECK (query_seqno >= 0),
        query_id         integer      NOT NULL,
        created_at_chain bigint       NOT NULL CHECK (created_at_chain > 0),
        timeout_s        integer      NOT NULL CHECK (timeout_s > 0 AND timeout_s < 4194304),
        payouts          smallint     NOT NULL CHECK (payouts BETWEEN 1 AND 254),
        inner_hash       char(64)     NOT NULL CHECK (inner_hash ~ {HEX}),
        request          text         NOT NULL,
        sign_requests    integer      NOT NULL DEFAULT 1,
        signed_boc       text,
        message_hash     char(64)     CHECK (message_hash ~ {HEX}),
        state            varchar(20)  NOT NULL
                         CHECK (state IN ('awaiting_signature', 'external', 'signed', 'landed', 'expired', 'refused')),
        sends            integer      NOT NULL DEFAULT 0,
        external_tx_hash char(64)     CHECK (external_tx_hash ~ {HEX}),
        internal_tx_hash char(64)     CHECK (internal_tx_hash ~ {HEX}),
        error_code       varchar(64),
        detail           text,
        created_at       timestamptz  NOT NULL DEFAULT now(),
        updated_at       timestamptz  NOT NULL DEFAULT now(),
        CONSTRAINT ton_batches_query_seqno_once UNIQUE (wallet, query_seqno),
        CONSTRAINT ton_batches_inner_once UNIQUE (inner_hash),
        CONSTRAINT ton_batches_query_id_of_seqno CHECK (
            query_id = ((query_seqno % {CYCLE}) / 1023) * 1024 + (query_seqno % {CYCLE}) % 1023),
        CONSTRAINT ton_batches_signed_has_boc
            CHECK (state NOT IN ('signed', 'landed') OR (signed_boc IS NOT NULL AND message_hash IS NOT NULL)),
        CONSTRAINT ton_batches_landed_has_tx CHECK (state <> 'landed' OR external_tx_hash IS NOT NULL)
    )""",
    f"CREATE INDEX ton_batches_live ON ton_batches (provider) WHERE state IN {LIVE}",
    "CREATE INDEX ton_batches_query_id ON ton_batches (wallet, query_id)",
    f"""
    CREATE TABLE ton_batch_items (
        request_id      varchar(128) NOT NULL REFERENCES ton_batches (request_id),
        position        smallint     NOT NULL CHECK (position BETWEEN 0 AND 253),
        provider        varchar(64)  NOT NULL,
        idempotency_key varchar(255) NOT NULL,
        payout_id       varchar(128) NOT NULL,
        asset           varchar(16)  NOT NULL,
        amount          bigint       NOT NULL CHECK (amount > 0),
        destination     varchar(70)  NOT NULL CHECK (destination ~ {RAW}),
        jetton_query_id bigint       CHECK (jetton_query_id >= 0),
        state           varchar(16)  NOT NULL CHECK (state IN ('in_flight', 'paid', 'failed', 'expired', 'refused')),
        out_msg_hash    char(64)     CHECK (out_msg_hash ~ {HEX}),
        error_code      varchar(64),
        detail          text,
        updated_at      timestamptz  NOT NULL DEFAULT now(),
        PRIMARY KEY (request_id, position),
        FOREIGN KEY (provider, idempotency_key) REFERENCES ton_payouts (provider, idempotency_key),
        CONSTRAINT ton_batch_items_once_per_batch UNIQUE (request_id, provider, idempotency_key),
        CONSTRAINT ton_batch_items_one_destination UNIQUE (request_id, asset, destination),
        CONSTRAINT ton_batch_items_paid_has_out_msg CHECK (state <> 'paid' OR out_msg_hash IS NOT NULL),
        CONSTRAINT ton_batch_items_failed_has_code CHECK (state <> 'failed' OR error_code IS NOT NULL)
    )""",
    """CREATE UNIQUE INDEX ton_batch_items_one_live ON ton_batch_items (provider, idempotency_key)
       WHERE state = 'in_flight'""",
    """
    CREATE FUNCTION ton_batches_query_id_free() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        blocking record;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('prizeflow-ton-query-ids:' || NEW.wallet, 0));
        SELECT request_id, created_at_chain + 4 * timeout_s AS free_at INTO blocking FROM ton_batches
         WHERE wallet = NEW.wallet AND query_id = NEW.query_id AND request_id <> NEW.request_id
           AND created_at_chain + 4 * timeout_s >= NEW.created_at_chain
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'query id % of wallet % is used by % until %', NEW.query_id, NEW.wallet,
                blocking.request_id, blocking.free_at USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """CREATE TRIGGER ton_batches_query_id_free BEFORE INSERT ON ton_batches
       FOR EACH ROW EXECUTE FUNCTION ton_batches_query_id_free()""",
    """
    CREATE FUNCTION ton_batch_items_not_in_a_v4r2_message() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM ton_payouts WHERE provider = NEW.provider AND idempotency_key = NEW.idempotency_key
            FOR UPDATE;
        IF EXISTS (SELECT 1 FROM ton_messages WHERE provider = NEW.provider
                   AND idempotency_key = NEW.idempotency_key
                   AND state IN ('awaiting_signature', 'external', 'signed')) THEN
            RAISE EXCEPTION 'payout % has a live wallet v4r2 message', NEW.payout_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """CREATE TRIGGER ton_batch_items_not_in_a_v4r2_message BEFORE INSERT ON ton_batch_items
       FOR EACH ROW EXECUTE FUNCTION ton_batch_items_not_in_a_v4r2_message()""",
    """
    CREATE FUNCTION ton_messages_not_in_a_batch() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM ton_payouts WHERE provider = NEW.provider AND idempotency_key = NEW.idempotency_key
            FOR UPDATE;
        IF EXISTS (SELECT 1 FROM ton_batch_items WHERE provider = NEW.provider
                   AND idempotency_key = NEW.idempotency_key AND state = 'in_flight') THEN
            RAISE EXCEPTION 'payout % is in a live highload batch message', NEW.payout_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """CREATE TRIGGER ton_messages_not_in_a_batch BEFORE INSERT ON ton_messages
       FOR EACH ROW EXECUTE FUNCTION ton_messages_not_in_a_batch()""",
]

_DOWN = [
    "DROP TRIGGER ton_messages_not_in_a_batch ON ton_messages",
    "DROP FUNCTION ton_messages_not_in_a_batch()",
    "DROP TABLE ton_batch_items",
    "DROP FUNCTION ton_batch_items_not_in_a_v4r2_message()",
    "DROP TABLE ton_batches",
    "DROP FUNCTION ton_batches_query_id_free()",
    "ALTER TABLE ton_payouts DROP COLUMN solo",
]


def upgrade() -> None:
    for ddl in _UP:
        op.execute(ddl)


def downgrade() -> None:
    for ddl in _DOWN:
        op.execute(ddl)
