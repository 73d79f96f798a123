"""SQL of the Stellar provider's books (tables of migrations 0002 and 0006), run only by the stores of `books`. Every
state change is guarded by the state it expects (compare-and-set), so a late or duplicate actor changes nothing."""

# ruff: noqa: S608 - only constant fragments are interpolated; values are bound
from __future__ import annotations

from typing import Final

from sqlalchemy import text

from prizeflow_payouts.adapters.stellar import states as st

# The states each guard accepts come from the transition table (`states.TX_TRANSITIONS`), never typed here.
OPEN_TX_STATES: Final = tuple(s.value for s in st.OPEN_TX_STATES)
LANE_BUSY_STATES: Final = OPEN_TX_STATES
_OPEN = st.sql_states(st.OPEN_TX_STATES)
_AWAITING = st.sql_states(sorted(st.AWAITING_SIGNATURE))
_TO_SIGNED = st.sql_states(st.sources_of(st.TxState.SIGNED, moves_only=True))
_TO_EXTERNAL = st.sql_states(st.sources_of(st.TxState.EXTERNAL, moves_only=True))
_TO_REFUSED = st.sql_states(st.sources_of(st.TxState.REFUSED, moves_only=True))

ENSURE_LANE = text(
    "INSERT INTO stellar_lanes (account, role) VALUES (:account, :role) ON CONFLICT (account) DO NOTHING"
)

FREE_LANES = text(
    "SELECT account, sequence FROM stellar_lanes WHERE account = ANY(:lanes) AND busy_tx IS NULL ORDER BY account"
)

LANE = text("SELECT account, sequence, busy_tx FROM stellar_lanes WHERE account = :lane")

# Build-only: every lane, held or not (a build-only envelope never holds its lane).
ALL_LANES = text("SELECT account, sequence FROM stellar_lanes WHERE account = ANY(:lanes)")

# Resync: take the network's sequence only if nobody changed the lane since we looked.
SET_LANE_SEQUENCE = text(
    """UPDATE stellar_lanes SET sequence = :new, synced_at = now(), updated_at = now()
       WHERE account = :lane AND sequence IS NOT DISTINCT FROM :old AND busy_tx IS NULL"""
)

# Reserve the next sequence number and the lane in one compare-and-set.
RESERVE_LANE = text(
    """UPDATE stellar_lanes SET sequence = :seq, busy_tx = :tx, updated_at = now()
       WHERE account = :lane AND sequence = :old AND busy_tx IS NULL"""
)

# Build-only: sequences are reserved (distinct per lane) but the lane is never held.
RESERVE_SEQUENCE = text(
    """UPDATE stellar_lanes SET sequence = :seq, updated_at = now()
       WHERE account = :lane AND sequence = :old"""
)

# The envelope consumed its sequence number (landed, successfully or not).
RELEASE_LANE_CONSUMED = text(
    """UPDATE stellar_lanes SET busy_tx = NULL, sequence = GREATEST(coalesce(sequence, 0), :seq), updated_at = now()
       WHERE account = :lane AND busy_tx = :tx"""
)

# The envelope never landed and never will: forget what we believe and re-read the network next time.
RELEASE_LANE_RESYNC = text(
    """UPDATE stellar_lanes SET busy_tx = NULL, sequence = :sequence, updated_at = now()
       WHERE account = :lane AND busy_tx = :tx"""
)

QUEUED = text(
    """SELECT idempotency_key, payout_id, asset, amount, destination, attempts, isolate
       FROM stellar_payouts
       WHERE provider = :provider AND state = 'queued' AND not_before <= now() AND asset = ANY(:assets)
       ORDER BY isolate DESC, created_at, idempotency_key
       LIMIT :limit FOR UPDATE SKIP LOCKED"""
)

ANY_DUE = text(
    """SELECT EXISTS (SELECT 1 FROM stellar_payouts
       WHERE provider = :provider AND state = 'queued' AND not_before <= now() AND asset = ANY(:assets))"""
)

# When the engine next has timed work: an open envelope's check, or a queued payout's `not_before` still ahead (one
# due now is built at the next pass a wake or a freed lane brings). Each term is the first row of a partial index.
NEXT_DUE_IN = text(
    """SELECT extract(epoch FROM least(
         (SELECT min(next_check_at) FROM stellar_txs
           WHERE provider = :provider AND state IN ('signing', 'signed', 'external', 'submitted')),
         (SELECT min(not_before) FROM stellar_payouts
           WHERE provider = :provider AND state = 'queued' AND not_before > now())
       ) - now())"""
)

INSERT_TX = text(
    """INSERT INTO stellar_txs (id, provider, lane, sequence, kind, payout_ids, state, unsigned_xdr, sign_request,
                                tx_hash, fee, max_time, sign_requests, sign_requested_at, next_check_at)
       VALUES (:id, :provider, :lane, :sequence, :kind, :payout_ids, :state, :unsigned_xdr,
               CAST(:sign_request AS jsonb), :tx_hash, :fee, :max_time, :sign_requests,
               CASE WHEN :sign_requests > 0 THEN now() END, now() + make_interval(secs => :check_in_s))"""
)

# Still queued, for statements driven by a batch's payout ids (`payout_id = ANY(...)`, the unique index): a CASE, so
# that it is no index condition and proves no partial index. Written `state = 'queued'`, a plan PostgreSQL chose
# when its statistics were taken with nothing queued (a quiet spell, then a burst) scanned the whole queue
# (`stellar_payouts_queue`) and compared every queued payout with every id: 19 ms for a transaction's 100 payouts
# among 20,000 queued, growing with the queue, instead of well under a millisecond.
_STILL_QUEUED = "CASE WHEN state = 'queued' THEN true ELSE false END"

ASSIGN_PAYOUTS = text(
    f"""UPDATE stellar_payouts SET state = 'in_tx', tx_id = :tx, attempts = attempts + 1, error_code = NULL,
              error_detail = NULL, updated_at = now()
       WHERE payout_id = ANY(:payout_ids) AND {_STILL_QUEUED}"""
)

DUE_TXS = text(
    f"""SELECT id, lane, sequence, kind, payout_ids, state, tx_hash, signed_xdr, max_time, submits, polls,
               sign_requests, sign_request, last_status, error_code, fee
        FROM stellar_txs
        WHERE provider = :provider AND state IN {_OPEN} AND next_check_at <= now()
        ORDER BY next_check_at LIMIT :limit"""
)

TX_BY_ID = text(
    """SELECT id, provider, lane, sequence, kind, payout_ids, state, tx_hash, unsigned_xdr, signed_xdr, max_time,
              fee, error_code, detail, ledger, result_code, op_codes, submits, created_at
       FROM stellar_txs WHERE id = :id"""
)

TXS_OF_PAYOUT = text(
    """SELECT id, state, tx_hash, sequence, lane, max_time, error_code, ledger, created_at
       FROM stellar_txs WHERE :payout_id = ANY(payout_ids) ORDER BY created_at"""
)

MARK_TX = text(
    """UPDATE stellar_txs SET state = :state, error_code = coalesce(:error_code, error_code),
              detail = coalesce(:detail, detail), last_status = coalesce(:last_status, last_status),
              submits = submits + :submitted,
              last_submit_at = CASE WHEN :submitted > 0 THEN now() ELSE last_submit_at END,
              polls = polls + :polled, next_check_at = now() + make_interval(secs => :check_in_s), updated_at = now()
       WHERE id = :id AND state = :expected"""
)

FINISH_TX = text(
    """UPDATE stellar_txs SET state = :state, ledger = :ledger, result_code = :result_code, op_codes = :op_codes,
              error_code = coalesce(:error_code, error_code), updated_at = now()
       WHERE id = :id AND state = ANY(:expected)"""
)

RESEND_SIGN = text(
    """UPDATE stellar_txs SET sign_requests = sign_requests + 1, sign_requested_at = now(),
              next_check_at = now() + make_interval(secs => :check_in_s), updated_at = now()
       WHERE id = :id AND state = 'signing' AND sign_requests = :seen"""
)

SIGNED = text(
    f"""UPDATE stellar_txs SET state = 'signed', signed_xdr = :signed_xdr, signed_by = :signed_by,
              next_check_at = now(), updated_at = now()
       WHERE id = :id AND provider = :provider AND tx_hash = :tx_hash
              AND state IN {_TO_SIGNED}"""
)

TX_FOR_SIGNATURE = text(
    """SELECT id, lane, sequence, state, tx_hash, unsigned_xdr, fee, max_time, payout_ids
       FROM stellar_txs WHERE id = :id AND provider = :provider"""
)

# Leader election (migration 0006): one row per provider name, its `lock_id` a unique identity, never reused.
ENSURE_ENGINE_LOCK = text(
    "INSERT INTO stellar_engine_locks (provider) VALUES (:provider) ON CONFLICT (provider) DO NOTHING"
)

ENGINE_LOCK_ID = text("SELECT lock_id FROM stellar_engine_locks WHERE provider = :provider")

# A signed envelope that is not exactly the transaction built: never submitted. The envelope waits for its own
# time bound (nothing new is built for its payouts while something signed for them might be live), then dies.
SIGNED_REFUSED = text(
    f"""UPDATE stellar_txs SET error_code = :error_code, detail = :detail, next_check_at = to_timestamp(max_time + 1),
              updated_at = now()
       WHERE id = :id AND provider = :provider AND state IN {_AWAITING}"""
)

SIGNER_RETRY_LATER = text(
    """UPDATE stellar_txs SET error_code = :error_code, detail = :detail,
              next_check_at = now() + make_interval(secs => :check_in_s), updated_at = now()
       WHERE id = :id AND provider = :provider AND state = 'signing'"""
)

EXTERNAL = text(
    f"""UPDATE stellar_txs SET state = 'external', detail = :detail, next_check_at = to_timestamp(max_time + 1),
              updated_at = now()
       WHERE id = :id AND provider = :provider AND state IN {_TO_EXTERNAL}"""
)

REFUSED = text(
    f"""UPDATE stellar_txs SET state = 'refused', error_code = :error_code, detail = :detail, updated_at = now()
       WHERE id = :id AND provider = :provider AND state IN {_TO_REFUSED}
       RETURNING lane, sequence, payout_ids"""
)

PAID = text(
    """UPDATE stellar_payouts SET state = 'paid', tx_hash = :tx_hash, ledger = :ledger, error_code = NULL,
              error_detail = NULL, updated_at = now()
       WHERE tx_id = :tx AND state = 'in_tx'"""
)

# Back to the queue (a new envelope will be built), or failed for good. `live_until` (unix seconds, 0 for none):
# not before a transaction the signer signed for these payouts can no longer land (it refuses another until then).
REQUEUE = text(
    """UPDATE stellar_payouts SET state = 'queued', tx_id = NULL, isolate = isolate OR :isolate,
              attempts = attempts - :refund, error_code = :error_code, error_detail = :detail,
              not_before = GREATEST(now() + make_interval(secs => :delay_s), to_timestamp(:live_until)),
              updated_at = now()
       WHERE tx_id = :tx AND state = 'in_tx' AND payout_id = ANY(:payout_ids)"""
)

FAIL = text(
    """UPDATE stellar_payouts SET state = 'failed', error_code = :error_code, error_detail = :detail,
              updated_at = now()
       WHERE tx_id = :tx AND state = 'in_tx' AND payout_id = ANY(:payout_ids)"""
)

FAIL_QUEUED = text(
    f"""UPDATE stellar_payouts SET state = 'failed', error_code = 'invalid_request', error_detail = :detail,
              updated_at = now()
       WHERE payout_id = ANY(:ids) AND {_STILL_QUEUED}"""
)

ISOLATE = text(f"UPDATE stellar_payouts SET isolate = true WHERE payout_id = ANY(:ids) AND {_STILL_QUEUED}")

PAYOUT_ATTEMPTS = text("SELECT payout_id, attempts FROM stellar_payouts WHERE tx_id = :tx AND state = 'in_tx'")

INSERT_PAYOUTS = text(
    """INSERT INTO stellar_payouts (idempotency_key, payout_id, provider, asset, amount, destination, state)
       SELECT k, p, :provider, a, m, d, 'queued'
       FROM unnest(CAST(:keys AS text[]), CAST(:ids AS text[]), CAST(:assets AS text[]), CAST(:amounts AS bigint[]),
                   CAST(:dests AS text[])) AS t(k, p, a, m, d)
       ON CONFLICT DO NOTHING"""
)

PAYOUTS_BY_KEY = text(
    """SELECT p.idempotency_key, p.payout_id, p.asset, p.amount, p.destination, p.state, p.tx_id, p.tx_hash,
              p.error_code, p.error_detail, p.attempts, t.tx_hash AS current_hash, t.fee AS tx_fee,
              t.payout_ids AS tx_payout_ids
       FROM stellar_payouts p LEFT JOIN stellar_txs t ON t.id = p.tx_id
       WHERE p.idempotency_key = ANY(:keys)"""
)

# The statement's links: our transactions by hash, and the payouts a memo names.
TXS_BY_HASH = text("SELECT tx_hash, payout_ids FROM stellar_txs WHERE provider = :provider AND tx_hash = ANY(:hashes)")
PAYOUTS_BY_ID = text(
    "SELECT payout_id, destination, asset, amount FROM stellar_payouts WHERE provider = :provider "
    "AND payout_id = ANY(:ids)"
)

PAYOUT_BY_ID = text(
    "SELECT idempotency_key, payout_id, provider, state, tx_id, tx_hash FROM stellar_payouts WHERE payout_id = :id"
)

# Progress of each source account: the highest sequence a landed envelope consumed, and when it landed. Walks the
# live-envelope index (lane, sequence) backwards from the top: at most the lane's one open envelope is stepped over.
_LANDED = st.sql_states((st.TxState.SUCCESS, st.TxState.FAILED))
SOURCE_PROGRESS = text(
    f"""SELECT l.account, coalesce(landed.sequence, 0) AS sequence,
              coalesce(extract(epoch FROM landed.updated_at), 0) AS advanced_at
       FROM stellar_lanes l
       LEFT JOIN LATERAL (
           SELECT t.sequence, t.updated_at FROM stellar_txs t
           WHERE t.lane = l.account AND t.state NOT IN ('dead', 'refused') AND t.state IN {_LANDED}
           ORDER BY t.sequence DESC LIMIT 1
       ) landed ON true
       WHERE l.account = ANY(:lanes)"""
)

# The oldest payout not landed yet: queued, or in an envelope on its way (a build-only envelope waits for
# people by design and is not counted).
OLDEST_WAITING = text(
    f"""SELECT coalesce(extract(epoch FROM clock_timestamp() - min(w.created_at)), 0) FROM (
           SELECT created_at FROM stellar_payouts WHERE provider = :provider AND state = 'queued'
           UNION ALL
           SELECT p.created_at FROM stellar_txs t JOIN stellar_payouts p ON p.tx_id = t.id AND p.state = 'in_tx'
           WHERE t.provider = :provider AND t.state IN {_OPEN}
       ) w"""
)

__all__ = [name for name in dir() if name.isupper()]
