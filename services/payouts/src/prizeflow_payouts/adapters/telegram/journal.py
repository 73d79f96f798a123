"""SQL of the Telegram rail's books (`telegram_gift_sends`, migration 0010). Every change is guarded by the state
it expects (compare-and-set), so a late or concurrent actor changes nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


class TelegramBooks:
    """The rail's books in one transaction (`bind`: a unit of work's session; the provider opens one per step, as a
    use case does, and commits between its calls to Telegram)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, payout_id: str) -> dict[str, Any] | None:
        found = (await self.session.execute(GET, {"payout_id": payout_id})).mappings().first()
        return None if found is None else dict(found)

    async def claimed(self, transaction_ids: Sequence[str]) -> set[str]:
        return {r[0] for r in await self.session.execute(CLAIMED, {"ids": list(transaction_ids)})}

    async def scan_floor(self, provider: str) -> int | None:
        floor = (await self.session.execute(SCAN_FLOOR, {"provider": provider})).scalar_one_or_none()
        return None if floor is None else int(floor)

    async def keys_of(self, provider: str, transaction_ids: Sequence[str]) -> dict[str, str]:
        rows = await self.session.execute(KEYS_OF, {"provider": provider, "ids": list(transaction_ids)})
        return {r[0]: r[1] for r in rows}

    async def sent_to(self, provider: str, users: Sequence[int], earliest: float, latest: float) -> list[Any]:
        params = {"provider": provider, "users": list(users), "earliest": earliest, "latest": latest}
        return list(await self.session.execute(SENT_TO, params))

    async def change(self, statement: Any, params: Mapping[str, Any]) -> int:
        """One guarded change of the books (a statement of this module); the rows it changed."""
        result = await self.session.execute(statement, dict(params))
        return int(getattr(result, "rowcount", 0) or 0)


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
    "TelegramBooks",
]
