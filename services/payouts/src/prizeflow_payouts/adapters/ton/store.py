"""SQL of the TON provider's books (migration 0012). Guarded updates: each names the state it expects."""

from __future__ import annotations

from sqlalchemy import text

DRIVER_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtextextended('prizeflow-ton-driver:' || :provider, 0))")

INSERT_PAYOUT = text(
    """INSERT INTO ton_payouts (provider, idempotency_key, payout_id, asset, amount, destination, bounce, state)
       VALUES (:provider, :key, :payout_id, :asset, :amount, :destination, :bounce, 'queued')
       ON CONFLICT (provider, idempotency_key) DO NOTHING"""
)

PAYOUT_FOR_UPDATE = text("SELECT * FROM ton_payouts WHERE provider = :provider AND idempotency_key = :key FOR UPDATE")

PAYOUT = text("SELECT * FROM ton_payouts WHERE provider = :provider AND idempotency_key = :key")

REQUEUE_FAILED = text(
    """UPDATE ton_payouts SET state = 'queued', messages = 0, not_before = now(), error_code = NULL,
              retryable = NULL, reported = false, detail = NULL, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'failed' AND retryable
       RETURNING *"""
)

MARK_REPORTED = text(
    """UPDATE ton_payouts SET reported = true, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'failed'"""
)

IN_FLIGHT = text(
    """SELECT * FROM ton_messages WHERE provider = :provider AND state IN ('awaiting_signature', 'external', 'signed')
       FOR UPDATE"""
)

NEXT_QUEUED = text(
    """SELECT * FROM ton_payouts WHERE provider = :provider AND state = 'queued' AND not_before <= now()
       ORDER BY not_before, created_at LIMIT 1 FOR UPDATE SKIP LOCKED"""
)

LAST_LANDED_SEQNO = text("SELECT max(seqno) FROM ton_messages WHERE wallet = :wallet AND state = 'landed'")

# The message built last (any state): nothing but our messages moves the wallet's seqno, so a seqno read past it
# while it is not landed means it, or another sender, consumed that seqno.
LAST_MESSAGE = text(
    """SELECT * FROM ton_messages WHERE provider = :provider ORDER BY created_at DESC, request_id DESC LIMIT 1"""
)

# Our expired messages of one seqno that were signed (only those can have landed), to look for on the chain.
EXPIRED_AT_SEQNO = text(
    """SELECT * FROM ton_messages WHERE provider = :provider AND seqno = :seqno AND state = 'expired'
       AND message_hash IS NOT NULL ORDER BY created_at FOR UPDATE"""
)

INSERT_MESSAGE = text(
    """INSERT INTO ton_messages (request_id, provider, idempotency_key, payout_id, wallet, seqno, valid_until,
                                request, state)
       VALUES (:request_id, :provider, :key, :payout_id, :wallet, :seqno, :valid_until, :request,
               'awaiting_signature')"""
)

PAYOUT_SENDING = text(
    """UPDATE ton_payouts SET state = 'sending', messages = messages + 1, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'queued'"""
)

MESSAGE_FOR_UPDATE = text("SELECT * FROM ton_messages WHERE request_id = :id AND provider = :provider FOR UPDATE")

MESSAGE_SIGNED = text(
    """UPDATE ton_messages SET state = 'signed', signed_boc = :boc, message_hash = :hash, updated_at = now()
       WHERE request_id = :id AND state IN ('awaiting_signature', 'external')"""
)

MESSAGE_EXTERNAL = text(
    """UPDATE ton_messages SET state = 'external', updated_at = now()
       WHERE request_id = :id AND state = 'awaiting_signature'"""
)

OPEN_MESSAGE_OF_PAYOUT = text(
    """SELECT * FROM ton_messages WHERE provider = :provider AND payout_id = :payout_id
       AND state IN ('awaiting_signature', 'external', 'signed') FOR UPDATE"""
)

PAYOUT_MESSAGE_HASH = text(
    """UPDATE ton_payouts SET message_hash = :hash, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key"""
)

MESSAGE_CLOSED = text(
    """UPDATE ton_messages SET state = :state, error_code = :code, detail = :detail, updated_at = now()
       WHERE request_id = :id AND state IN ('awaiting_signature', 'external', 'signed')"""
)

MESSAGES_BUILT = text("SELECT count(*) FROM ton_messages WHERE provider = :provider AND idempotency_key = :key")

MESSAGE_SEQNO_MOVED = text(
    """UPDATE ton_messages SET error_code = :code, updated_at = now()
       WHERE request_id = :id AND state = 'signed'"""
)

MESSAGE_SENT = text("UPDATE ton_messages SET sends = sends + 1, updated_at = now() WHERE request_id = :id")

MESSAGE_SIGN_AGAIN = text(
    """UPDATE ton_messages SET sign_requests = sign_requests + 1, updated_at = now()
       WHERE request_id = :id AND state = 'awaiting_signature' RETURNING sign_requests"""
)

PAYOUT_REQUEUE = text(
    """UPDATE ton_payouts SET state = 'queued', not_before = :not_before, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'sending'"""
)

# `fee`: nanotons the payout's transaction cost it (a v4r2 message's whole fee, a batch item's share; migration
# 0018), reported as the paid result's fee; NULL: not known.
PAYOUT_PAID = text(
    """UPDATE ton_payouts SET state = 'paid', message_hash = :hash, tx_hash = :tx_hash, fee = :fee, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'sending'"""
)

# An expired message found landed after all (the API lagged past valid_until + margin): it consumed the seqno.
MESSAGE_LANDED_LATE = text(
    """UPDATE ton_messages SET state = 'landed', error_code = :code, detail = :detail, updated_at = now()
       WHERE request_id = :id AND state = 'expired'"""
)

# Its payout paid from that transaction, wherever the expiry left it (queued again, or failed and not sent since).
PAYOUT_PAID_LATE = text(
    """UPDATE ton_payouts SET state = 'paid', message_hash = :hash, tx_hash = :tx_hash, fee = :fee, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state IN ('queued', 'failed')"""
)

PAYOUT_FAILED = text(
    """UPDATE ton_payouts SET state = 'failed', error_code = :code, retryable = :retryable, reported = false,
              detail = :detail, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state IN ('queued', 'sending')"""
)

# The wallet's progress for the worker's gauges: the last seqno a message of ours consumed, and when.
WALLET_PROGRESS = text(
    """SELECT seqno, extract(epoch FROM updated_at) FROM ton_messages
       WHERE provider = :provider AND state = 'landed' ORDER BY seqno DESC LIMIT 1"""
)

OLDEST_WAITING = text(
    """SELECT extract(epoch FROM now() - min(created_at)) FROM ton_payouts
       WHERE provider = :provider AND state IN ('queued', 'sending')"""
)

__all__ = [name for name in dir() if name.isupper()]
