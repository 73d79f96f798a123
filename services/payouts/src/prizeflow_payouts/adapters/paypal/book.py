"""The PayPal rail's books (tables `paypal_batches` and `paypal_items`, migration 0033): each batch as sent, before
it is sent, so that a lost answer is asked again with the very request and its `PayPal-Request-Id`, and a payout
is never in two batches. Each call is one short unit of work (the runtime's) on the service's pool: the rail
commits between its provider calls and never holds a row across one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_runtime.sql_uow import SqlUnitOfWork, unit_of_work


@dataclass(frozen=True, slots=True)
class Item:
    """One payout in a batch: our key (its `sender_item_id`), what it pays, and PayPal's ids once read."""

    idempotency_key: str
    payout_id: str
    asset: str
    amount: int
    sender_batch_id: str
    payout_item_id: str | None = None
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    sender_batch_id: str
    body: Mapping[str, Any]
    payout_batch_id: str | None  # None: sent without an answer, or not sent yet


class PayPalItems(Protocol):
    """The rail's books in one unit of work."""

    async def enter(
        self, provider: str, batch: str, items: Sequence[Item], body: Callable[[list[str]], dict[str, Any]]
    ) -> list[str]:
        """`items` into a new batch `batch`, but those already in one (they stay where they are); the batch's body
        written for the items entered (`body(keys)`), or the batch dropped when none was. The keys entered."""
        ...

    async def items(self, provider: str, keys: Sequence[str]) -> dict[str, Item]: ...

    async def batch(self, provider: str, sender_batch_id: str) -> Batch | None: ...

    async def answered(self, provider: str, sender_batch_id: str, payout_batch_id: str) -> bool:
        """PayPal's id of the batch; False: the batch holds another one (never overwritten)."""
        ...

    async def refused(self, provider: str, sender_batch_id: str) -> None:
        """A batch PayPal made nothing of goes, with its items (an answered one never does)."""
        ...

    async def seen(self, provider: str, key: str, payout_item_id: str, transaction_id: str | None) -> None:
        """PayPal's ids of an item, kept the first time they are read (never replaced by another item's)."""
        ...

    async def keys_of(self, provider: str, refs: Sequence[str]) -> dict[str, tuple[str, str]]:
        """PayPal's item or transaction id -> (our key, PayPal's item id), for those of ours."""
        ...

    async def answered_between(self, provider: str, since: datetime, until: datetime) -> list[str]:
        """PayPal's ids of our batches made in [since, until) that PayPal answered, oldest first."""
        ...


# Each call one unit of work: `async with books("what") as items:` (`what` names it in a failure).
PayPalBooks = Callable[[str], AbstractAsyncContextManager[PayPalItems]]

_ENTER_BATCH = text(
    "INSERT INTO paypal_batches (provider, sender_batch_id, body) VALUES (:provider, :batch, '{}'::jsonb)"
)
_ENTER_ITEM = text(
    """INSERT INTO paypal_items (provider, idempotency_key, payout_id, sender_batch_id, asset, amount)
       VALUES (:provider, :key, :payout_id, :batch, :asset, :amount)
       ON CONFLICT (provider, idempotency_key) DO NOTHING
       RETURNING idempotency_key"""
)
_BODY = text(
    "UPDATE paypal_batches SET body = CAST(:body AS jsonb) WHERE provider = :provider AND sender_batch_id = :batch"
)
_DROP_EMPTY = text("DELETE FROM paypal_batches WHERE provider = :provider AND sender_batch_id = :batch")
_ITEMS = text(
    """SELECT idempotency_key, payout_id, asset, amount, sender_batch_id, payout_item_id, transaction_id
       FROM paypal_items WHERE provider = :provider AND idempotency_key = ANY(:keys)"""
)
_BATCH = text(
    """SELECT sender_batch_id, body, payout_batch_id FROM paypal_batches
       WHERE provider = :provider AND sender_batch_id = :batch"""
)
_ANSWERED = text(
    """UPDATE paypal_batches SET payout_batch_id = :payout_batch_id, state = 'sent', updated_at = now()
       WHERE provider = :provider AND sender_batch_id = :batch AND (payout_batch_id IS NULL OR
             payout_batch_id = :payout_batch_id)
       RETURNING sender_batch_id"""
)
# Only a batch PayPal never answered goes: one answered exists there, whatever a later call said.
_REFUSED = text(
    "DELETE FROM paypal_batches WHERE provider = :provider AND sender_batch_id = :batch AND payout_batch_id IS NULL"
)
_SEEN = text(
    """UPDATE paypal_items SET payout_item_id = :item, transaction_id = coalesce(:tx, transaction_id),
              updated_at = now()
       WHERE provider = :provider AND idempotency_key = :key AND (payout_item_id IS NULL OR payout_item_id = :item)"""
)
_ANSWERED_BETWEEN = text(
    """SELECT payout_batch_id FROM paypal_batches
       WHERE provider = :provider AND payout_batch_id IS NOT NULL AND created_at >= :since AND created_at < :until
       ORDER BY created_at, sender_batch_id"""
)
_KEYS_OF = text(
    """SELECT payout_item_id, transaction_id, idempotency_key FROM paypal_items
       WHERE provider = :provider AND (payout_item_id = ANY(:refs) OR transaction_id = ANY(:refs))"""
)


class PayPalBookError(PayoutProviderError):
    """The books' database failed: retryable, carrying no parameter (a receiver is personal data)."""

    def __init__(self, what: str) -> None:
        super().__init__(PayoutError.of(PayoutErrorCode.PROVIDER_UNAVAILABLE, f"paypal books: {what} failed"))


class SqlPayPalItems:
    """The rail's two tables in one transaction (`bind`: a unit of work's session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enter(
        self, provider: str, batch: str, items: Sequence[Item], body: Callable[[list[str]], dict[str, Any]]
    ) -> list[str]:
        await self.session.execute(_ENTER_BATCH, {"provider": provider, "batch": batch})
        entered: list[str] = []
        for item in items:
            params = {
                "provider": provider,
                "key": item.idempotency_key,
                "payout_id": item.payout_id,
                "batch": batch,
                "asset": item.asset,
                "amount": item.amount,
            }
            if (await self.session.execute(_ENTER_ITEM, params)).first() is not None:
                entered.append(item.idempotency_key)
        if entered:
            await self.session.execute(_BODY, {"provider": provider, "batch": batch, "body": json.dumps(body(entered))})
        else:
            await self.session.execute(_DROP_EMPTY, {"provider": provider, "batch": batch})
        return entered

    async def items(self, provider: str, keys: Sequence[str]) -> dict[str, Item]:
        rows = (await self.session.execute(_ITEMS, {"provider": provider, "keys": list(keys)})).mappings().all()
        return {str(r["idempotency_key"]): Item(**dict(r)) for r in rows}

    async def batch(self, provider: str, sender_batch_id: str) -> Batch | None:
        row = (await self.session.execute(_BATCH, {"provider": provider, "batch": sender_batch_id})).mappings().first()
        return None if row is None else Batch(str(row["sender_batch_id"]), row["body"], row["payout_batch_id"])

    async def answered(self, provider: str, sender_batch_id: str, payout_batch_id: str) -> bool:
        params = {"provider": provider, "batch": sender_batch_id, "payout_batch_id": payout_batch_id}
        return (await self.session.execute(_ANSWERED, params)).first() is not None

    async def refused(self, provider: str, sender_batch_id: str) -> None:
        await self.session.execute(_REFUSED, {"provider": provider, "batch": sender_batch_id})

    async def seen(self, provider: str, key: str, payout_item_id: str, transaction_id: str | None) -> None:
        params = {"provider": provider, "key": key, "item": payout_item_id, "tx": transaction_id}
        await self.session.execute(_SEEN, params)

    async def keys_of(self, provider: str, refs: Sequence[str]) -> dict[str, tuple[str, str]]:
        rows = (await self.session.execute(_KEYS_OF, {"provider": provider, "refs": list(refs)})).all()
        wanted, found = set(refs), dict[str, tuple[str, str]]()
        for item_id, tx_id, key in rows:
            for ref in (item_id, tx_id):
                if ref is not None and ref in wanted:
                    found[str(ref)] = (str(key), str(item_id))
        return found

    async def answered_between(self, provider: str, since: datetime, until: datetime) -> list[str]:
        params = {"provider": provider, "since": since, "until": until}
        return [str(r[0]) for r in (await self.session.execute(_ANSWERED_BETWEEN, params)).all()]


class SqlPayPalBooks:
    """`PayPalBooks` on the payouts database: each call its own unit of work on the service's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._uow: SqlUnitOfWork[SqlPayPalItems] = unit_of_work(engine, SqlPayPalItems)

    @asynccontextmanager
    async def __call__(self, what: str) -> AsyncIterator[PayPalItems]:
        try:
            async with self._uow() as items:
                yield items
        except (SQLAlchemyError, OSError):
            raise PayPalBookError(what) from None


__all__ = ["Batch", "Item", "PayPalBookError", "PayPalBooks", "PayPalItems", "SqlPayPalBooks", "SqlPayPalItems"]
