"""SQL of the highload wallet v3 batching lane (migration 0014). Guarded updates: each names the state it expects.
The payouts' own rows (`ton_payouts`) are moved by the statements of `store.py`."""

from __future__ import annotations

from sqlalchemy import text

# Live batches, and landed ones with a payout still unresolved (a jetton wallet's transaction not seen yet).
DRIVEN = text(
    """SELECT * FROM ton_batches b WHERE provider = :provider
          AND (state IN ('awaiting_signature', 'external', 'signed') OR (state = 'landed' AND EXISTS (
               SELECT 1 FROM ton_batch_items i WHERE i.request_id = b.request_id AND i.state = 'in_flight')))
        ORDER BY created_at FOR UPDATE"""
)

LIVE_COUNT = text(
    """SELECT count(*) FROM ton_batches
       WHERE provider = :provider AND state IN ('awaiting_signature', 'external', 'signed')"""
)

OPEN_V4R2_MESSAGES = text(
    """SELECT count(*) FROM ton_messages
       WHERE provider = :provider AND state IN ('awaiting_signature', 'external', 'signed')"""
)

ITEMS = text("SELECT * FROM ton_batch_items WHERE request_id = :id ORDER BY position")

QUEUED = text(
    """SELECT *, extract(epoch FROM now() - not_before) AS waited_s FROM ton_payouts
       WHERE provider = :provider AND state = 'queued' AND not_before <= now()
       ORDER BY not_before, created_at LIMIT :limit FOR UPDATE SKIP LOCKED"""
)

NEXT_QUERY_SEQNO = text("SELECT coalesce(max(query_seqno) + 1, 0) FROM ton_batches WHERE wallet = :wallet")

# The trigger's rule, asked first so that a blocked query id waits instead of failing the pass.
QUERY_ID_BUSY_UNTIL = text(
    """SELECT max(created_at_chain + 4 * timeout_s) FROM ton_batches
       WHERE wallet = :wallet AND query_id = :query_id AND created_at_chain + 4 * timeout_s >= :created_at"""
)

INSERT_BATCH = text(
    """INSERT INTO ton_batches (request_id, provider, wallet, query_seqno, query_id, created_at_chain, timeout_s,
                               payouts, inner_hash, request, state)
       VALUES (:request_id, :provider, :wallet, :query_seqno, :query_id, :created_at, :timeout, :payouts,
               :inner_hash, :request, 'awaiting_signature')"""
)

INSERT_ITEM = text(
    """INSERT INTO ton_batch_items (request_id, position, provider, idempotency_key, payout_id, asset, amount,
                                   destination, jetton_query_id, state)
       VALUES (:request_id, :position, :provider, :key, :payout_id, :asset, :amount, :destination,
               :jetton_query_id, 'in_flight')"""
)

BATCH_FOR_UPDATE = text("SELECT * FROM ton_batches WHERE request_id = :id AND provider = :provider FOR UPDATE")

BATCH_SIGNED = text(
    """UPDATE ton_batches SET state = 'signed', signed_boc = :boc, message_hash = :hash, updated_at = now()
       WHERE request_id = :id AND state IN ('awaiting_signature', 'external')"""
)

BATCH_EXTERNAL = text(
    """UPDATE ton_batches SET state = 'external', updated_at = now()
       WHERE request_id = :id AND state = 'awaiting_signature'"""
)

BATCH_SIGN_AGAIN = text(
    """UPDATE ton_batches SET sign_requests = sign_requests + 1, updated_at = now()
       WHERE request_id = :id AND state = 'awaiting_signature' RETURNING sign_requests"""
)

BATCH_SENT = text("UPDATE ton_batches SET sends = sends + 1, updated_at = now() WHERE request_id = :id")

# Evidence that a message with this query id landed (a sendBoc answered "already executed"): never expired now.
BATCH_EVIDENCE = text(
    """UPDATE ton_batches SET error_code = :code, detail = :detail, updated_at = now()
       WHERE request_id = :id AND state = 'signed'"""
)

BATCH_LANDED = text(
    """UPDATE ton_batches SET state = 'landed', external_tx_hash = :external_tx, external_fee = :fee, updated_at = now()
       WHERE request_id = :id AND state = 'signed'"""
)

BATCH_INTERNAL_TX = text(
    """UPDATE ton_batches SET internal_tx_hash = :internal_tx, internal_fee = :fee, updated_at = now()
       WHERE request_id = :id AND state = 'landed' AND internal_tx_hash IS NULL"""
)

# An item's share of its batch's transaction fees (statement.fee_share over the items the internal transaction
# carried an out-message for), set once: when those out-messages are first read.
ITEM_FEE = text(
    """UPDATE ton_batch_items SET fee = :fee, updated_at = now()
       WHERE request_id = :id AND position = :position AND fee IS NULL"""
)

BATCH_CLOSED = text(
    """UPDATE ton_batches SET state = :state, error_code = :code, detail = :detail, updated_at = now()
       WHERE request_id = :id AND state IN ('awaiting_signature', 'external', 'signed')"""
)

ITEMS_CLOSED = text(
    """UPDATE ton_batch_items SET state = :state, error_code = :code, detail = :detail, updated_at = now()
       WHERE request_id = :id AND state = 'in_flight'"""
)

ITEM_PAID = text(
    """UPDATE ton_batch_items SET state = 'paid', out_msg_hash = :out_msg, updated_at = now()
       WHERE request_id = :id AND position = :position AND state = 'in_flight'"""
)

ITEM_FAILED = text(
    """UPDATE ton_batch_items SET state = 'failed', out_msg_hash = :out_msg, error_code = :code, detail = :detail,
              updated_at = now()
       WHERE request_id = :id AND position = :position AND state = 'in_flight'"""
)

# A payout whose batch the signer refused goes back alone: one payout's refusal never fails its neighbours.
PAYOUT_REQUEUE_SOLO = text(
    """UPDATE ton_payouts SET state = 'queued', solo = true, not_before = :not_before, updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND state = 'sending'"""
)

OPEN_BATCH_OF_PAYOUT = text(
    """SELECT b.* FROM ton_batches b JOIN ton_batch_items i ON i.request_id = b.request_id
       WHERE i.provider = :provider AND i.payout_id = :payout_id AND i.state = 'in_flight'
         AND b.state IN ('awaiting_signature', 'external', 'signed')
       FOR UPDATE OF b"""
)

# The lane's progress for the worker's gauges: the last batch that landed (its query sequence number), and when.
LANE_PROGRESS = text(
    """SELECT query_seqno, extract(epoch FROM updated_at) FROM ton_batches
       WHERE provider = :provider AND state = 'landed' ORDER BY query_seqno DESC LIMIT 1"""
)

__all__ = [name for name in dir() if name.isupper()]
