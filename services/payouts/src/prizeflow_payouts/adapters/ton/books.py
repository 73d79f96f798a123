"""The TON rail's books. `TonBooks` is the v4r2 driver's port: one pass's view of `ton_payouts` and `ton_messages`,
inside one transaction, so the driver's decisions are tested on an in-memory fake of these few operations, never on
SQL statements. `SqlTonBooks` is the PostgreSQL adapter and the rail's one store, bound on a unit of work's session
(`ton_books`: the runtime's unit of work on the pool the bootstrap hands the rail): the v4r2 messages itself, the
payouts (`payouts`), the highload batches (`batches`), the statement's reads (`names`), the driver's lock and the
outbox of the same transaction. Nothing in the rail opens a transaction of its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError
from prizeflow_payouts.adapters.ton import store
from prizeflow_payouts.adapters.ton.batch_store import SqlTonBatches
from prizeflow_payouts.adapters.ton.store import Row, SqlTonNames, SqlTonPayouts, first_row
from prizeflow_runtime.outbox import add_events
from prizeflow_runtime.sql_uow import SqlUnitOfWork, unit_of_work


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
    """`TonBooks`, and the rest of the rail's tables, on one unit of work's session."""

    def __init__(self, session: AsyncSession, provider: str) -> None:
        self.session = session
        self.provider = provider
        self.payouts = SqlTonPayouts(session, provider)
        self.batches = SqlTonBatches(session, provider)
        self.names = SqlTonNames(session, provider)

    async def _one(self, statement: Any, **params: Any) -> Row | None:
        return await first_row(self.session, statement, params)

    async def _scalar(self, statement: Any, **params: Any) -> Any:
        return (await self.session.execute(statement, params)).scalar()

    async def _message_closed(self, request_id: str, state: str, code: str | None, detail: str | None) -> None:
        await self.session.execute(
            store.MESSAGE_CLOSED, {"id": request_id, "state": state, "code": code, "detail": detail}
        )

    # -- one pass of a driver (v4r2: `TonBooks`; the highload lane takes the same lock) ---------------------

    async def lead(self) -> bool:
        return bool(await self._scalar(store.DRIVER_LOCK, provider=self.provider))

    async def in_flight(self) -> Row | None:
        return await self._one(store.IN_FLIGHT, provider=self.provider)

    async def next_queued(self) -> Row | None:
        return await self._one(store.NEXT_QUEUED, provider=self.provider)

    async def last_landed_seqno(self, wallet: str) -> int | None:
        last = await self._scalar(store.LAST_LANDED_SEQNO, wallet=wallet)
        return None if last is None else int(last)

    async def last_message(self) -> Row | None:
        return await self._one(store.LAST_MESSAGE, provider=self.provider)

    async def expired_at_seqno(self, seqno: int) -> list[Row]:
        rows = await self.session.execute(store.EXPIRED_AT_SEQNO, {"provider": self.provider, "seqno": seqno})
        return [dict(r) for r in rows.mappings().all()]

    async def messages_built(self, key: str) -> int:
        return int(await self._scalar(store.MESSAGES_BUILT, provider=self.provider, key=key) or 0)

    async def add_message(self, *, request_id: str, key: str, payout_id: str, wallet: str, seqno: int,
                          valid_until: int, request: str) -> None:  # fmt: skip
        await self.session.execute(
            store.INSERT_MESSAGE,
            {"provider": self.provider, "key": key, "request_id": request_id, "payout_id": payout_id,
             "wallet": wallet, "seqno": seqno, "valid_until": valid_until, "request": request},
        )  # fmt: skip
        await self.payouts.sending(key)

    async def sign_again(self, request_id: str) -> int:
        return int(await self._scalar(store.MESSAGE_SIGN_AGAIN, id=request_id) or 1)

    async def sent(self, request_id: str, *, seqno_moved: str | None = None) -> None:
        if seqno_moved is not None:
            await self.session.execute(store.MESSAGE_SEQNO_MOVED, {"id": request_id, "code": seqno_moved})
        await self.session.execute(store.MESSAGE_SENT, {"id": request_id})

    async def _settle(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None, *,
                      late: bool) -> None:  # fmt: skip
        key = message["idempotency_key"]
        if error is None:
            tx_hash, fee = fee_tx
            await self.payouts.paid(key, message_hash=message["message_hash"], tx_hash=tx_hash, fee=fee, late=late)
        else:
            await self.payouts.failed(key, code=error.code.value, retryable=error.retryable, detail=error.message)

    async def landed(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        code, detail = (error.code.value, error.message) if error else (None, None)
        await self._message_closed(message["request_id"], "landed", code, detail)
        await self._settle(message, fee_tx, error, late=False)

    async def landed_late(self, message: Row, fee_tx: tuple[str, int | None], error: PayoutError | None) -> None:
        code, detail = (error.code.value, error.message) if error else (None, None)
        await self.session.execute(
            store.MESSAGE_LANDED_LATE, {"id": message["request_id"], "code": code, "detail": detail}
        )
        await self._settle(message, fee_tx, error, late=True)

    async def expire(self, message: Row, why: str, *, code: str, max_messages: int, now: datetime) -> None:
        await self._message_closed(message["request_id"], "expired", code, why)
        await self.payouts.expired(message["idempotency_key"], code=code, max_messages=max_messages, now=now)

    async def stage(self, events: Sequence[Envelope[Any]]) -> None:
        await add_events(self.session, list(events))

    # -- v4r2 signatures (the signer's answers, out-of-band signing) -----------------------------------------

    async def message_locked(self, request_id: str) -> Row | None:
        return await self._one(store.MESSAGE_FOR_UPDATE, id=request_id, provider=self.provider)

    async def message_of_payout(self, payout_id: str) -> Row | None:
        """The payout's live message, locked."""
        return await self._one(store.OPEN_MESSAGE_OF_PAYOUT, provider=self.provider, payout_id=payout_id)

    async def message_external(self, request_id: str) -> None:
        """Left to an operator to sign out of band (awaiting_signature → external)."""
        await self.session.execute(store.MESSAGE_EXTERNAL, {"id": request_id})

    async def message_signed(self, request_id: str, boc: str, message_hash: str) -> None:
        await self.session.execute(store.MESSAGE_SIGNED, {"id": request_id, "boc": boc, "hash": message_hash})

    async def message_refused(self, request_id: str, code: str, detail: str) -> None:
        await self._message_closed(request_id, "refused", code, detail)

    async def wallet_progress(self) -> tuple[int, float] | None:
        """The last seqno a message of ours consumed, and when (None: none yet)."""
        landed = (await self.session.execute(store.WALLET_PROGRESS, {"provider": self.provider})).first()
        return None if landed is None else (int(landed[0]), float(landed[1]))


def ton_books(engine: AsyncEngine, provider: str) -> SqlUnitOfWork[SqlTonBooks]:
    """The rail's unit of work on the pool the bootstrap hands it: `async with uow() as books:` begins a session,
    binds the books on it and commits when the block ends (rolls back if it raises)."""

    def bind(session: AsyncSession) -> SqlTonBooks:
        return SqlTonBooks(session, provider)

    return unit_of_work(engine, bind)


__all__ = ["Row", "SqlTonBooks", "TonBooks", "ton_books"]
