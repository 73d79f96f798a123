"""The TON driver's books: one pass's view of `ton_payouts` and `ton_messages`, inside one transaction. A port
(`TonBooks`), so the driver's decisions are tested on an in-memory fake of these few operations, never on SQL
statements; `SqlTonBooks` is the PostgreSQL adapter (store.py's guarded statements, each naming the state it
expects, and the outbox of the same transaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError
from prizeflow_payouts.adapters.ton import store as q
from prizeflow_runtime.outbox import add_events

Row = dict[str, Any]


class TonBooks(Protocol):
    """What one driver pass reads and writes. Rows are plain dicts of the tables' columns."""

    async def lead(self) -> bool:
        """This pass drives the wallet (a transaction-scoped advisory lock): False, another replica does."""
        ...

    async def in_flight(self) -> Row | None:
        """The wallet's live message (awaiting a signature, signed out of band, or signed), locked."""
        ...

    async def next_queued(self) -> Row | None:
        """The next payout due to be sent, locked (skipping one another pass holds)."""
        ...

    async def last_landed_seqno(self, wallet: str) -> int | None: ...

    async def last_message(self) -> Row | None:
        """The message built last, in any state."""
        ...

    async def expired_at_seqno(self, seqno: int) -> list[Row]:
        """Our expired messages of this seqno that were signed (only those can have landed), locked."""
        ...

    async def messages_built(self, key: str) -> int:
        """How many messages were ever built for this payout (numbers are never reused)."""
        ...

    async def add_message(self, *, request_id: str, key: str, payout_id: str, wallet: str, seqno: int,
                          valid_until: int, request: str) -> None:  # fmt: skip
        """A new message awaiting its signature, and its payout moved to `sending`."""
        ...

    async def sign_again(self, request_id: str) -> int:
        """One more signature request of an unsigned message; its number."""
        ...

    async def sent(self, request_id: str, *, seqno_moved: str | None = None) -> None:
        """A sendBoc of the message was made; `seqno_moved`: it was refused so (evidence it may have landed)."""
        ...

    async def landed(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        """The message's transaction was found: the message closed landed, its payout paid (`fee_tx`: the
        transaction's hash and fee) or failed with `error`."""
        ...

    async def landed_late(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        """An expired message found landed after all: recorded so, its payout paid (or failed) wherever the
        expiry left it."""
        ...

    async def expire(self, message: Row, why: str, *, code: str, max_messages: int, now: datetime) -> None:
        """The message provably never lands: closed expired; its payout queued again, or failed (retryable)
        once it had `max_messages` messages."""
        ...

    async def stage(self, events: Sequence[Envelope[Any]]) -> None:
        """Events committed with this pass (the signer's requests)."""
        ...


class SqlTonBooks:
    """`TonBooks` on one connection's transaction."""

    def __init__(self, conn: AsyncConnection, provider: str) -> None:
        self.conn = conn
        self.provider = provider

    async def _one(self, stmt: Any, **params: Any) -> Row | None:
        found = (await self.conn.execute(stmt, params)).mappings().first()
        return dict(found) if found is not None else None

    async def lead(self) -> bool:
        return bool((await self.conn.execute(q.DRIVER_LOCK, {"provider": self.provider})).scalar())

    async def in_flight(self) -> Row | None:
        return await self._one(q.IN_FLIGHT, provider=self.provider)

    async def next_queued(self) -> Row | None:
        return await self._one(q.NEXT_QUEUED, provider=self.provider)

    async def last_landed_seqno(self, wallet: str) -> int | None:
        last = (await self.conn.execute(q.LAST_LANDED_SEQNO, {"wallet": wallet})).scalar()
        return None if last is None else int(last)

    async def last_message(self) -> Row | None:
        return await self._one(q.LAST_MESSAGE, provider=self.provider)

    async def expired_at_seqno(self, seqno: int) -> list[Row]:
        rows = await self.conn.execute(q.EXPIRED_AT_SEQNO, {"provider": self.provider, "seqno": seqno})
        return [dict(r) for r in rows.mappings().all()]

    async def messages_built(self, key: str) -> int:
        built = await self.conn.execute(q.MESSAGES_BUILT, {"provider": self.provider, "key": key})
        return int(built.scalar() or 0)

    async def add_message(self, *, request_id: str, key: str, payout_id: str, wallet: str, seqno: int,
                          valid_until: int, request: str) -> None:  # fmt: skip
        params = {"provider": self.provider, "key": key}
        await self.conn.execute(
            q.INSERT_MESSAGE,
            {**params, "request_id": request_id, "payout_id": payout_id, "wallet": wallet, "seqno": seqno,
             "valid_until": valid_until, "request": request},
        )  # fmt: skip
        await self.conn.execute(q.PAYOUT_SENDING, params)

    async def sign_again(self, request_id: str) -> int:
        return int((await self.conn.execute(q.MESSAGE_SIGN_AGAIN, {"id": request_id})).scalar() or 1)

    async def sent(self, request_id: str, *, seqno_moved: str | None = None) -> None:
        if seqno_moved is not None:
            await self.conn.execute(q.MESSAGE_SEQNO_MOVED, {"id": request_id, "code": seqno_moved})
        await self.conn.execute(q.MESSAGE_SENT, {"id": request_id})

    async def _settle(self, stmt: Any, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        params = {"provider": self.provider, "key": message["idempotency_key"]}
        if error is None:
            tx_hash, fee = fee_tx
            await self.conn.execute(stmt, {**params, "hash": message["message_hash"], "tx_hash": tx_hash, "fee": fee})
        else:
            await self.conn.execute(
                q.PAYOUT_FAILED,
                {**params, "code": error.code.value, "retryable": error.retryable, "detail": error.message},
            )

    async def landed(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        await self.conn.execute(
            q.MESSAGE_CLOSED,
            {"id": message["request_id"], "state": "landed", "code": error.code.value if error else None,
             "detail": error.message if error else None},
        )  # fmt: skip
        await self._settle(q.PAYOUT_PAID, message, fee_tx, error)

    async def landed_late(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        await self.conn.execute(
            q.MESSAGE_LANDED_LATE,
            {"id": message["request_id"], "code": error.code.value if error else None,
             "detail": error.message if error else None},
        )  # fmt: skip
        await self._settle(q.PAYOUT_PAID_LATE, message, fee_tx, error)

    async def expire(self, message: Row, why: str, *, code: str, max_messages: int, now: datetime) -> None:
        params = {"provider": self.provider, "key": message["idempotency_key"]}
        await self.conn.execute(
            q.MESSAGE_CLOSED, {"id": message["request_id"], "state": "expired", "code": code, "detail": why}
        )
        payout = await self._one(q.PAYOUT_FOR_UPDATE, **params)
        if payout is not None and int(payout["messages"]) >= max_messages:
            detail = f"{payout['messages']} messages expired without landing"
            await self.conn.execute(q.PAYOUT_FAILED, {**params, "code": code, "retryable": True, "detail": detail})
        else:
            await self.conn.execute(q.PAYOUT_REQUEUE, {**params, "not_before": now})

    async def stage(self, events: Sequence[Envelope[Any]]) -> None:
        await add_events(self.conn, list(events))


def sql_books(db: Callable[[], AsyncEngine], provider: str) -> Callable[[], AbstractAsyncContextManager[TonBooks]]:
    """One pass's books: a transaction of the service's pool, committed when the pass returns."""

    @asynccontextmanager
    async def books() -> AsyncIterator[TonBooks]:
        async with db().begin() as conn:
            yield SqlTonBooks(conn, provider)

    return books


__all__ = ["Row", "SqlTonBooks", "TonBooks", "sql_books"]
