"""SQL of the highload wallet v3 batching lane (migration 0014). Guarded updates: each names the state it expects.
The payouts' own rows (`ton_payouts`) are moved by `store.py`'s `SqlTonPayouts`; `SqlTonBatches` moves the batches
and their items, on a unit of work's session (`books.py` binds it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.errors import PayoutError

Row = dict[str, Any]

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


class SqlTonBatches:
    """A provider's highload batches (`ton_batches`) and their items (`ton_batch_items`) on one session."""

    def __init__(self, session: AsyncSession, provider: str) -> None:
        self.session = session
        self.provider = provider

    async def _rows(self, statement: Any, params: Mapping[str, Any]) -> list[Row]:
        return [dict(r) for r in (await self.session.execute(statement, params)).mappings().all()]

    async def _row(self, statement: Any, params: Mapping[str, Any]) -> Row | None:
        found = (await self.session.execute(statement, params)).mappings().first()
        return dict(found) if found is not None else None

    async def _scalar(self, statement: Any, params: Mapping[str, Any]) -> Any:
        return (await self.session.execute(statement, params)).scalar()

    # -- the driver's pass ------------------------------------------------------------------------------------

    async def v4r2_messages_live(self) -> int:
        """Wallet v4r2 messages of the provider still live (the lane never batches beside them)."""
        return int(await self._scalar(OPEN_V4R2_MESSAGES, {"provider": self.provider}) or 0)

    async def driven(self) -> list[Row]:
        """The batches a pass drives, oldest first, locked: live ones, and landed ones with an item unresolved."""
        return await self._rows(DRIVEN, {"provider": self.provider})

    async def live(self) -> int:
        return int(await self._scalar(LIVE_COUNT, {"provider": self.provider}) or 0)

    async def items(self, request_id: str) -> list[Row]:
        return await self._rows(ITEMS, {"id": request_id})

    async def due_payouts(self, limit: int) -> list[Row]:
        """Queued payouts due, oldest first, with how long each waited (`waited_s`), locked (skipping those another
        transaction holds)."""
        return await self._rows(QUEUED, {"provider": self.provider, "limit": limit})

    async def next_query_seqno(self, wallet: str) -> int:
        return int(await self._scalar(NEXT_QUERY_SEQNO, {"wallet": wallet}) or 0)

    async def query_id_busy_until(self, wallet: str, query_id: int, created_at: int) -> int | None:
        """Until when a message with this query id may still be processed (None: it is free to use)."""
        busy = await self._scalar(
            QUERY_ID_BUSY_UNTIL, {"wallet": wallet, "query_id": query_id, "created_at": created_at}
        )
        return None if busy is None else int(busy)

    async def add(self, batch: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> None:
        """A new batch awaiting its signature (`batch`: INSERT_BATCH's fields but the provider) and its items in
        flight (`items`: INSERT_ITEM's fields but the request id and provider)."""
        request = {"request_id": batch["request_id"], "provider": self.provider}
        await self.session.execute(INSERT_BATCH, {**batch, **request})
        await self.session.execute(INSERT_ITEM, [{**item, **request} for item in items])

    async def sign_again(self, request_id: str) -> int:
        """One more signature request of an unsigned batch; its number."""
        return int(await self._scalar(BATCH_SIGN_AGAIN, {"id": request_id}) or 1)

    async def sent(self, request_id: str) -> None:
        await self.session.execute(BATCH_SENT, {"id": request_id})

    async def already_executed(self, request_id: str, code: str, detail: str) -> None:
        """A sendBoc answered that its query id is processed: evidence it may have landed (never expired now)."""
        await self.session.execute(BATCH_EVIDENCE, {"id": request_id, "code": code, "detail": detail})

    async def landed(self, request_id: str, external_tx: str, fee: int | None) -> None:
        """Its external transaction was found (signed → landed)."""
        await self.session.execute(BATCH_LANDED, {"id": request_id, "external_tx": external_tx, "fee": fee})

    async def internal_landed(self, request_id: str, internal_tx: str, fee: int | None) -> None:
        """The wallet's transaction of its internal transfer (the one holding its out-messages), recorded once."""
        await self.session.execute(BATCH_INTERNAL_TX, {"id": request_id, "internal_tx": internal_tx, "fee": fee})

    async def closed(self, request_id: str, state: str, code: str, detail: str) -> None:
        """A live batch closed (`expired`, `refused`), with its items still in flight."""
        closed = {"id": request_id, "state": state, "code": code, "detail": detail}
        await self.session.execute(BATCH_CLOSED, closed)
        await self.session.execute(ITEMS_CLOSED, closed)

    async def item_fee(self, request_id: str, position: int, fee: int) -> None:
        """An item's share of its batch's transaction fees, set once."""
        await self.session.execute(ITEM_FEE, {"id": request_id, "position": position, "fee": fee})

    async def item_paid(self, request_id: str, position: int, out_msg: str) -> None:
        await self.session.execute(ITEM_PAID, {"id": request_id, "position": position, "out_msg": out_msg})

    async def item_failed(self, request_id: str, position: int, out_msg: str | None, error: PayoutError) -> None:
        """Landed without paying (`out_msg`: the transfer that went out and came back, if one did)."""
        await self.session.execute(
            ITEM_FAILED,
            {"id": request_id, "position": position, "out_msg": out_msg, "code": error.code.value,
             "detail": error.message},
        )  # fmt: skip

    # -- signatures -------------------------------------------------------------------------------------------

    async def locked(self, request_id: str) -> Row | None:
        return await self._row(BATCH_FOR_UPDATE, {"id": request_id, "provider": self.provider})

    async def of_payout(self, payout_id: str) -> Row | None:
        """The live batch carrying this payout, locked."""
        return await self._row(OPEN_BATCH_OF_PAYOUT, {"provider": self.provider, "payout_id": payout_id})

    async def external(self, request_id: str) -> None:
        """Left to an operator to sign out of band (awaiting_signature → external)."""
        await self.session.execute(BATCH_EXTERNAL, {"id": request_id})

    async def signed(self, request_id: str, boc: str, message_hash: str) -> None:
        await self.session.execute(BATCH_SIGNED, {"id": request_id, "boc": boc, "hash": message_hash})

    # -- progress ---------------------------------------------------------------------------------------------

    async def progress(self) -> tuple[int, float] | None:
        """The last batch that landed: its query sequence number and when (None: none yet)."""
        landed = (await self.session.execute(LANE_PROGRESS, {"provider": self.provider})).first()
        return None if landed is None else (int(landed[0]), float(landed[1]))


__all__ = [name for name in dir() if name.isupper()] + ["Row", "SqlTonBatches"]
