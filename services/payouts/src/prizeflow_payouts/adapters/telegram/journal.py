"""SQL of the Telegram rail's books (`telegram_gift_sends`, migration 0010). Every change is guarded by the state
it expects (compare-and-set), so a late or concurrent actor changes nothing."""

from __future__ import annotations

from sqlalchemy import text

GET = text(
    """SELECT payout_id, idempotency_key, user_id, gift_id, star_count, state, answered, transaction_id,
              extract(epoch FROM started_at) AS started_at,
              extract(epoch FROM first_started_at) AS first_started_at, extract(epoch FROM now()) AS now
       FROM telegram_gift_sends WHERE payout_id = :payout_id"""
)

# Written and committed BEFORE sendGift: from here on the rail never calls it again for this payout unless
# Telegram's transactions prove it did not carry the call out.
INSERT_SENDING = text(
    """INSERT INTO telegram_gift_sends (payout_id, idempotency_key, provider, user_id, gift_id, star_count, state)
       VALUES (:payout_id, :key, :provider, :user_id, :gift_id, :star_count, 'sending')"""
)

RESEND = text(
    """UPDATE telegram_gift_sends
       SET state = 'sending', answered = false, sends = sends + 1, error_code = NULL, started_at = now(),
           updated_at = now()
       WHERE payout_id = :payout_id AND state = 'refused'"""
)

ANSWERED = text(
    """UPDATE telegram_gift_sends SET answered = true, updated_at = now()
       WHERE payout_id = :payout_id AND state = 'sending'"""
)

REFUSED = text(
    """UPDATE telegram_gift_sends SET state = 'refused', error_code = :code, updated_at = now()
       WHERE payout_id = :payout_id AND state = 'sending' AND NOT answered"""
)

MATCHED = text(
    """UPDATE telegram_gift_sends SET state = 'sent', transaction_id = :tx, updated_at = now()
       WHERE payout_id = :payout_id AND state = 'sending'"""
)

CLAIMED = text("SELECT transaction_id FROM telegram_gift_sends WHERE transaction_id = ANY(:ids)")

# The statement: which payout each transaction is (the rail matched it), and the gifts this rail sent to players
# around a time (to name the payout a gift nobody claimed was a second one of).
KEYS_OF = text(
    """SELECT transaction_id, idempotency_key FROM telegram_gift_sends
       WHERE provider = :provider AND transaction_id = ANY(:ids)"""
)

SENT_TO = text(
    """SELECT user_id, star_count, idempotency_key, extract(epoch FROM first_started_at) AS first_started_at
       FROM telegram_gift_sends
       WHERE provider = :provider AND user_id = ANY(:users)
         AND first_started_at >= to_timestamp(:earliest) AND first_started_at <= to_timestamp(:latest)"""
)

SCAN_FLOOR = text("SELECT floor FROM telegram_star_scans WHERE provider = :provider")

# Only ever forward: two scans racing leave the higher floor.
ADVANCE_FLOOR = text(
    """INSERT INTO telegram_star_scans (provider, floor) VALUES (:provider, :floor)
       ON CONFLICT (provider) DO UPDATE SET floor = GREATEST(telegram_star_scans.floor, EXCLUDED.floor),
              updated_at = now()"""
)

__all__ = [
    "ADVANCE_FLOOR",
    "ANSWERED",
    "CLAIMED",
    "GET",
    "INSERT_SENDING",
    "KEYS_OF",
    "MATCHED",
    "REFUSED",
    "RESEND",
    "SCAN_FLOOR",
    "SENT_TO",
]
