"""SQL of the TON provider's books (migration 0012). Guarded updates: each names the state it expects.

`SqlTonPayouts` moves the payouts' own rows (`ton_payouts`), `SqlTonNames` reads what the books name for the
statement; both on a unit of work's session (`books.py` binds them)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.adapters.ton import batch_store

Row = dict[str, Any]

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

# The statement: which payout each of a page's hashes is (the books name it, since a TON transfer of ours carries
# no comment), each batch transaction's items and fees, and each payout's reference and destination.
MESSAGES_BY_HASH = text(
    "SELECT message_hash, payout_id FROM ton_messages WHERE provider = :provider AND message_hash = ANY(:hashes)"
)
ITEMS_BY_OUT_HASH = text(
    "SELECT out_msg_hash, payout_id FROM ton_batch_items WHERE provider = :provider AND out_msg_hash = ANY(:hashes)"
)
BATCH_PAYOUTS_BY_TX = text(
    """SELECT b.request_id, b.external_tx_hash, b.internal_tx_hash, b.external_fee, b.internal_fee, i.payout_id,
              i.state, i.fee
       FROM ton_batches b JOIN ton_batch_items i ON i.request_id = b.request_id
       WHERE b.provider = :provider AND (i.state = 'paid' OR i.fee IS NOT NULL)
         AND (b.external_tx_hash = ANY(:hashes) OR b.internal_tx_hash = ANY(:hashes))
       ORDER BY b.request_id, i.position"""
)
PAYOUT_REFS = text(
    """SELECT t.payout_id, t.message_hash, p.destination_address
       FROM ton_payouts t LEFT JOIN payouts p ON p.id = t.payout_id
       WHERE t.provider = :provider AND t.payout_id = ANY(:ids)"""
)


async def first_row(session: AsyncSession, statement: Any, params: dict[str, Any]) -> Row | None:
    found = (await session.execute(statement, params)).mappings().first()
    return dict(found) if found is not None else None


class SqlTonPayouts:
    """A provider's payouts (`ton_payouts`) on one session: each move names the state it expects, so a late or
    concurrent actor changes nothing."""

    def __init__(self, session: AsyncSession, provider: str) -> None:
        self.session = session
        self.provider = provider

    def _key(self, key: str) -> dict[str, Any]:
        return {"provider": self.provider, "key": key}

    async def queue(self, key: str, *, payout_id: str, asset: str, amount: int, destination: str) -> Row | None:
        """Queue the payout (never bounceable: a bounce returns the money after the message landed, which reading
        the wallet's transactions cannot tell from a payment), unless the key is known; the row under the key,
        locked."""
        await self.session.execute(
            INSERT_PAYOUT,
            {**self._key(key), "payout_id": payout_id, "asset": asset, "amount": amount, "destination": destination,
             "bounce": False},
        )  # fmt: skip
        return await self.locked(key)

    async def locked(self, key: str) -> Row | None:
        return await first_row(self.session, PAYOUT_FOR_UPDATE, self._key(key))

    async def get(self, key: str) -> Row | None:
        return await first_row(self.session, PAYOUT, self._key(key))

    async def requeue_failed(self, key: str) -> Row | None:
        """A retryable failure created again: queued afresh (its message count of this cycle reset)."""
        return await first_row(self.session, REQUEUE_FAILED, self._key(key))

    async def reported(self, key: str) -> None:
        """Its failure was answered once; afterwards it reads as not found."""
        await self.session.execute(MARK_REPORTED, self._key(key))

    async def sending(self, key: str) -> None:
        """Taken into a message (queued → sending), one more message counted."""
        await self.session.execute(PAYOUT_SENDING, self._key(key))

    async def signed(self, key: str, message_hash: str) -> None:
        """Its message was signed: the hash is its provider reference."""
        await self.session.execute(PAYOUT_MESSAGE_HASH, {**self._key(key), "hash": message_hash})

    async def paid(self, key: str, *, message_hash: str, tx_hash: str, fee: int | None, late: bool = False) -> None:
        """sending → paid by the transaction `tx_hash`; `late`: an expired message found landed after all (from
        queued or failed, wherever the expiry left it)."""
        await self.session.execute(
            PAYOUT_PAID_LATE if late else PAYOUT_PAID,
            {**self._key(key), "hash": message_hash, "tx_hash": tx_hash, "fee": fee},
        )

    async def failed(self, key: str, *, code: str, retryable: bool, detail: str) -> None:
        await self.session.execute(
            PAYOUT_FAILED, {**self._key(key), "code": code, "retryable": retryable, "detail": detail}
        )

    async def requeue(self, key: str, not_before: datetime, *, alone: bool = False) -> None:
        """sending → queued, built again from `not_before`; `alone`: in a batch of its own (the signer refused
        the batch it was in)."""
        await self.session.execute(
            batch_store.PAYOUT_REQUEUE_SOLO if alone else PAYOUT_REQUEUE, {**self._key(key), "not_before": not_before}
        )

    async def expired(self, key: str, *, code: str, max_messages: int, now: datetime) -> None:
        """Its message provably never lands: queued again, or failed (retryable) once it had `max_messages`."""
        payout = await self.locked(key)
        if payout is not None and int(payout["messages"]) >= max_messages:
            detail = f"{payout['messages']} messages expired without landing"
            await self.failed(key, code=code, retryable=True, detail=detail)
        else:
            await self.requeue(key, now)

    async def oldest_waiting_s(self) -> float:
        """How long the oldest payout not concluded has waited (0: none)."""
        waiting = await self.session.scalar(OLDEST_WAITING, {"provider": self.provider})
        return max(0.0, float(waiting or 0))


class SqlTonNames:
    """What a provider's books say about the chain's hashes (the statement's reads), on one session."""

    def __init__(self, session: AsyncSession, provider: str) -> None:
        self.session = session
        self.provider = provider

    async def _pairs(self, statement: Any, **params: Any) -> dict[str, str]:
        rows = await self.session.execute(statement, {"provider": self.provider, **params})
        return {str(r[0]): str(r[1]) for r in rows}

    async def payouts_by_message(self, hashes: Sequence[str]) -> dict[str, str]:
        """A v4r2 external message's hash → its payout."""
        return await self._pairs(MESSAGES_BY_HASH, hashes=list(hashes))

    async def payouts_by_out_message(self, hashes: Sequence[str]) -> dict[str, str]:
        """A batch item's out-message hash → its payout."""
        return await self._pairs(ITEMS_BY_OUT_HASH, hashes=list(hashes))

    async def batch_items_of(self, tx_hashes: Sequence[str]) -> list[Any]:
        """The items of the batches whose external or internal transaction is one of these, with the batch's
        hashes and fees (rows read by attribute), in batch and position order."""
        rows = await self.session.execute(BATCH_PAYOUTS_BY_TX, {"provider": self.provider, "hashes": list(tx_hashes)})
        return list(rows)

    async def references(self, payout_ids: Sequence[str]) -> list[Any]:
        """Each payout's reference (its message hash) and destination as payouts holds it (rows read by
        attribute)."""
        return list(await self.session.execute(PAYOUT_REFS, {"provider": self.provider, "ids": list(payout_ids)}))


__all__ = [name for name in dir() if name.isupper()] + ["Row", "SqlTonNames", "SqlTonPayouts", "first_row"]
