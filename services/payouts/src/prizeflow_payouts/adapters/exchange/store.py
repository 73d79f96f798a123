# ruff: noqa: S608 - only constant fragments are interpolated; values are bound
"""The rail's own record of the withdrawals it asked for (table `exchange_withdrawals`, migration 0010).

The row is committed in `submitting` BEFORE the exchange is called; only an answer proving nothing was made moves
it to `not_sent`, and only from `not_sent` (or no row) may a withdrawal be asked for again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_runtime.sql_uow import unit_of_work


class WithdrawalState(StrEnum):
    SUBMITTING = "submitting"  # asked (or about to be): the outcome is unknown until an answer or a match
    SENT = "sent"  # the exchange's withdrawal id is known
    NOT_SENT = "not_sent"  # proven not made: a new request is safe


@dataclass(frozen=True)
class WithdrawalRecord:
    payout_id: str
    provider: str
    idempotency_key: str
    client_id: str
    state: WithdrawalState
    asset: str
    amount: int
    currency: str
    network: str
    address: str
    memo: str | None
    submitted_at: datetime
    withdrawal_id: str | None = None
    requests: int = 0


class WithdrawalBook(Protocol):
    async def get(self, payout_id: str) -> WithdrawalRecord | None: ...

    async def begin_request(self, record: WithdrawalRecord) -> tuple[WithdrawalRecord, bool]:
        """The record now in `submitting` and True, committed; or the existing one and False when it is
        `submitting` or `sent` (never ask twice)."""
        ...

    async def mark_sent(self, payout_id: str, withdrawal_id: str) -> bool:
        """Record the exchange's id; False when another payout's record already holds that withdrawal."""
        ...

    async def mark_not_sent(self, payout_id: str, *, resolved_by: str | None = None) -> None: ...

    async def settle(self, payout_id: str, withdrawal_id: str | None, *, resolved_by: str) -> WithdrawalRecord | None:
        """People's decision on a withdrawal still `submitting`: sent under `withdrawal_id`, or not sent (None)."""
        ...

    async def owned(self, provider: str, withdrawal_ids: list[str]) -> dict[str, str]:
        """Which of these withdrawals other records hold: withdrawal id -> payout id."""
        ...

    async def alike_in_flight(self, record: WithdrawalRecord, within_s: float, amounts: Sequence[int]) -> int:
        """How many OTHER records of this provider, address and memo, asking for one of `amounts` (those a
        withdrawal found could have been made for: its amount, or its amount plus its fee), are still `submitting`
        with a `submitted_at` within `within_s` of this one's: their withdrawals cannot be told from this one's."""
        ...


@runtime_checkable
class KnowsClientIds(Protocol):
    """A book that can say which payout's idempotency key a client id (`withdrawOrderId`) was derived from."""

    async def keys_of(self, provider: str, client_ids: list[str]) -> dict[str, str]: ...


_COLUMNS = (
    "payout_id, provider, idempotency_key, client_id, state, asset, amount, currency, network, address, memo,"
    " submitted_at, withdrawal_id, requests"
)

_GET = text(f"SELECT {_COLUMNS} FROM exchange_withdrawals WHERE payout_id = :payout_id")
_BEGIN = text(
    f"""INSERT INTO exchange_withdrawals (payout_id, provider, idempotency_key, client_id, state, asset, amount,
              currency, network, address, memo, submitted_at, requests)
       VALUES (:payout_id, :provider, :idempotency_key, :client_id, 'submitting', :asset, :amount, :currency,
              :network, :address, :memo, :submitted_at, 1)
       ON CONFLICT (payout_id) DO UPDATE SET state = 'submitting', submitted_at = EXCLUDED.submitted_at,
              requests = exchange_withdrawals.requests + 1, updated_at = now()
       WHERE exchange_withdrawals.state = 'not_sent'
       RETURNING {_COLUMNS}"""
)
_SENT = text(
    """UPDATE exchange_withdrawals SET state = 'sent', withdrawal_id = :withdrawal_id, updated_at = now()
       WHERE payout_id = :payout_id AND state <> 'sent'"""
)
_SETTLED_SENT = text(
    """UPDATE exchange_withdrawals SET state = 'sent', withdrawal_id = :withdrawal_id, resolved_by = :resolved_by,
              updated_at = now()
       WHERE payout_id = :payout_id AND state = 'submitting'"""
)
_NOT_SENT = text(
    """UPDATE exchange_withdrawals SET state = 'not_sent', resolved_by = :resolved_by, updated_at = now()
       WHERE payout_id = :payout_id AND state = 'submitting'"""
)
_OWNED = text(
    """SELECT withdrawal_id, payout_id FROM exchange_withdrawals
       WHERE provider = :provider AND withdrawal_id = ANY(:ids)"""
)
_KEYS = text(
    """SELECT client_id, idempotency_key FROM exchange_withdrawals
       WHERE provider = :provider AND client_id = ANY(:ids)"""
)

_ALIKE = text(
    """SELECT count(*) FROM exchange_withdrawals
       WHERE provider = :provider AND state = 'submitting' AND payout_id <> :payout_id
         AND address = :address AND memo IS NOT DISTINCT FROM :memo AND amount = ANY(CAST(:amounts AS bigint[]))
         AND currency = :currency AND network = :network
         AND submitted_at BETWEEN :earliest AND :latest"""
)


class WithdrawalBookError(PayoutProviderError):
    """The book's database failed. Carries the SQLSTATE only: the driver's error quotes the statement's parameters
    (a player's address and memo), and it is raised `from None` so no traceback shows them."""

    def __init__(self, what: str, sqlstate: str | None) -> None:
        super().__init__(
            PayoutError.of(
                PayoutErrorCode.PROVIDER_UNAVAILABLE,
                f"withdrawal book: {what} failed (SQLSTATE {sqlstate or 'none'})",
                provider_code=f"sqlstate:{sqlstate}" if sqlstate else None,
            )
        )
        self.sqlstate = sqlstate


def _sqlstate(err: BaseException) -> str | None:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state[:5]
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return None


@asynccontextmanager
async def _guarded(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError) as err:
        raise WithdrawalBookError(what, _sqlstate(err)) from None


def _record(row: Any) -> WithdrawalRecord:
    m = row._mapping
    return WithdrawalRecord(**{**dict(m), "state": WithdrawalState(m["state"])})


class SqlWithdrawals:
    """The rail's table in one transaction (`bind`: a unit of work's session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, payout_id: str) -> WithdrawalRecord | None:
        row = (await self.session.execute(_GET, {"payout_id": payout_id})).first()
        return _record(row) if row is not None else None

    async def begin_request(self, params: dict[str, Any]) -> tuple[WithdrawalRecord, bool]:
        row = (await self.session.execute(_BEGIN, params)).first()
        if row is not None:
            return _record(row), True
        existing = (await self.session.execute(_GET, {"payout_id": params["payout_id"]})).first()
        assert existing is not None
        return _record(existing), False

    async def execute(self, statement: Any, params: dict[str, Any]) -> None:
        await self.session.execute(statement, params)

    async def pairs(self, statement: Any, params: dict[str, Any]) -> list[Any]:
        return list((await self.session.execute(statement, params)).all())

    async def count(self, statement: Any, params: dict[str, Any]) -> int:
        return int((await self.session.execute(statement, params)).scalar_one())


class SqlWithdrawalBook:
    """`WithdrawalBook` on the payouts database: each call one short unit of work (the runtime's) on the service's
    pool; the row is committed before the exchange is called, never held across the call."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._uow = unit_of_work(engine, SqlWithdrawals)

    async def get(self, payout_id: str) -> WithdrawalRecord | None:
        async with _guarded("get"), self._uow() as book:
            return await book.get(payout_id)

    async def begin_request(self, record: WithdrawalRecord) -> tuple[WithdrawalRecord, bool]:
        params = {
            "payout_id": record.payout_id,
            "provider": record.provider,
            "idempotency_key": record.idempotency_key,
            "client_id": record.client_id,
            "asset": record.asset,
            "amount": record.amount,
            "currency": record.currency,
            "network": record.network,
            "address": record.address,
            "memo": record.memo,
            "submitted_at": record.submitted_at,
        }
        async with _guarded("begin_request"), self._uow() as book:
            return await book.begin_request(params)

    async def mark_sent(self, payout_id: str, withdrawal_id: str) -> bool:
        async with _guarded("mark_sent"):
            try:
                async with self._uow() as book:
                    await book.execute(_SENT, {"payout_id": payout_id, "withdrawal_id": withdrawal_id})
            except IntegrityError:
                return False  # exchange_withdrawals_one_owner: another payout holds this withdrawal
        return True

    async def mark_not_sent(self, payout_id: str, *, resolved_by: str | None = None) -> None:
        async with _guarded("mark_not_sent"), self._uow() as book:
            await book.execute(_NOT_SENT, {"payout_id": payout_id, "resolved_by": resolved_by})

    async def settle(self, payout_id: str, withdrawal_id: str | None, *, resolved_by: str) -> WithdrawalRecord | None:
        """Two people's decision on a withdrawal of unknown outcome: made (under `withdrawal_id`) or never made.
        Only from `submitting` (compare-and-set): the record as it stands afterwards, whoever settled it."""
        async with _guarded("settle"):
            try:
                async with self._uow() as book:
                    if withdrawal_id is None:
                        await book.execute(_NOT_SENT, {"payout_id": payout_id, "resolved_by": resolved_by})
                    else:
                        await book.execute(
                            _SETTLED_SENT,
                            {"payout_id": payout_id, "withdrawal_id": withdrawal_id, "resolved_by": resolved_by},
                        )
            except IntegrityError:
                pass  # exchange_withdrawals_one_owner: another payout holds this withdrawal; the record says so
        return await self.get(payout_id)

    async def owned(self, provider: str, withdrawal_ids: list[str]) -> dict[str, str]:
        if not withdrawal_ids:
            return {}
        async with _guarded("owned"), self._uow() as book:
            rows = await book.pairs(_OWNED, {"provider": provider, "ids": withdrawal_ids})
        return {r.withdrawal_id: r.payout_id for r in rows}

    async def keys_of(self, provider: str, client_ids: list[str]) -> dict[str, str]:
        """`KnowsClientIds`: our idempotency key of each client id this rail sent (client id -> key)."""
        if not client_ids:
            return {}
        async with _guarded("keys_of"), self._uow() as book:
            rows = await book.pairs(_KEYS, {"provider": provider, "ids": client_ids})
        return {r.client_id: r.idempotency_key for r in rows}

    async def alike_in_flight(self, record: WithdrawalRecord, within_s: float, amounts: Sequence[int]) -> int:
        params = {
            "provider": record.provider,
            "payout_id": record.payout_id,
            "address": record.address,
            "memo": record.memo,
            "amounts": sorted(set(amounts)),
            "currency": record.currency,
            "network": record.network,
            "earliest": record.submitted_at - timedelta(seconds=within_s),
            "latest": record.submitted_at + timedelta(seconds=within_s),
        }
        async with _guarded("alike_in_flight"), self._uow() as book:
            return await book.count(_ALIKE, params)


__all__ = [
    "KnowsClientIds",
    "SqlWithdrawalBook",
    "SqlWithdrawals",
    "WithdrawalBook",
    "WithdrawalBookError",
    "WithdrawalRecord",
    "WithdrawalState",
]
