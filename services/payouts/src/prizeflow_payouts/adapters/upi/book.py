# ruff: noqa: S608 - only constant fragments are interpolated; values are bound
"""The rail's memory of each destination at RazorpayX (table `upi_fund_accounts`, migration 0027): the contact and
fund account made for it once, and the validation that must find it `active` before a first payout goes to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_runtime.sql_uow import unit_of_work


class Validation(StrEnum):
    NONE = "none"  # not asked yet
    CREATED = "created"  # asked; the bank has not answered
    ACTIVE = "active"  # the account exists: payouts may go to it
    INVALID = "invalid"  # no such account: every payout to it fails
    FAILED = "failed"  # the bank did not answer: payouts wait for a person


@dataclass(frozen=True)
class FundAccount:
    provider: str
    destination: str  # the address's one spelling (prizeflow_contracts.upi.UpiAddress.spelling)
    contact_id: str
    fund_account_id: str
    validation: Validation = Validation.NONE
    validation_id: str | None = None


class FundAccountBook(Protocol):
    async def get(self, provider: str, destination: str) -> FundAccount | None: ...

    async def remember(self, account: FundAccount) -> FundAccount:
        """Store a new destination's contact and fund account; the one already stored wins a race."""
        ...

    async def validated(self, account: FundAccount, validation: Validation, validation_id: str) -> FundAccount: ...

    async def destinations(self, provider: str, fund_account_ids: list[str]) -> dict[str, str]:
        """fund account id -> destination, for those of ours."""
        ...


_COLUMNS = "provider, destination, contact_id, fund_account_id, validation, validation_id"
_GET = text(f"SELECT {_COLUMNS} FROM upi_fund_accounts WHERE provider = :provider AND destination = :destination")
_REMEMBER = text(
    f"""INSERT INTO upi_fund_accounts (provider, destination, contact_id, fund_account_id)
       VALUES (:provider, :destination, :contact_id, :fund_account_id)
       ON CONFLICT (provider, destination) DO UPDATE SET updated_at = upi_fund_accounts.updated_at
       RETURNING {_COLUMNS}"""
)
_VALIDATED = text(
    f"""UPDATE upi_fund_accounts SET validation = :validation, validation_id = :validation_id, updated_at = now()
       WHERE provider = :provider AND destination = :destination
       RETURNING {_COLUMNS}"""
)
_DESTINATIONS = text(
    """SELECT fund_account_id, destination FROM upi_fund_accounts
       WHERE provider = :provider AND fund_account_id = ANY(:ids)"""
)


class FundAccountBookError(PayoutProviderError):
    """The book's database failed: retryable, and carrying no parameter (a destination is personal data)."""

    def __init__(self, what: str) -> None:
        super().__init__(PayoutError.of(PayoutErrorCode.PROVIDER_UNAVAILABLE, f"upi fund account book: {what} failed"))


@asynccontextmanager
async def _guarded(what: str) -> AsyncIterator[None]:
    try:
        yield
    except (SQLAlchemyError, OSError):
        raise FundAccountBookError(what) from None


def _account(row: Any) -> FundAccount:
    m = row._mapping
    return FundAccount(**{**dict(m), "validation": Validation(m["validation"])})


class SqlFundAccounts:
    """The rail's table in one transaction (`bind`: a unit of work's session)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, provider: str, destination: str) -> FundAccount | None:
        row = (await self.session.execute(_GET, {"provider": provider, "destination": destination})).first()
        return _account(row) if row is not None else None

    async def remember(self, account: FundAccount) -> FundAccount:
        params = {
            "provider": account.provider,
            "destination": account.destination,
            "contact_id": account.contact_id,
            "fund_account_id": account.fund_account_id,
        }
        return _account((await self.session.execute(_REMEMBER, params)).one())

    async def validated(self, account: FundAccount, validation: Validation, validation_id: str) -> FundAccount:
        params = {
            "provider": account.provider,
            "destination": account.destination,
            "validation": validation.value,
            "validation_id": validation_id,
        }
        return _account((await self.session.execute(_VALIDATED, params)).one())

    async def destinations(self, provider: str, fund_account_ids: list[str]) -> dict[str, str]:
        if not fund_account_ids:
            return {}
        rows = (await self.session.execute(_DESTINATIONS, {"provider": provider, "ids": fund_account_ids})).all()
        return {str(r[0]): str(r[1]) for r in rows}


class SqlFundAccountBook:
    """`FundAccountBook` on the payouts database: each call one short unit of work (the runtime's) on the service's
    pool; the rail commits between its provider calls, never holding a row across one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._uow = unit_of_work(engine, SqlFundAccounts)

    async def get(self, provider: str, destination: str) -> FundAccount | None:
        async with _guarded("get"), self._uow() as accounts:
            return await accounts.get(provider, destination)

    async def remember(self, account: FundAccount) -> FundAccount:
        async with _guarded("remember"), self._uow() as accounts:
            return await accounts.remember(account)

    async def validated(self, account: FundAccount, validation: Validation, validation_id: str) -> FundAccount:
        async with _guarded("validated"), self._uow() as accounts:
            return await accounts.validated(account, validation, validation_id)

    async def destinations(self, provider: str, fund_account_ids: list[str]) -> dict[str, str]:
        if not fund_account_ids:
            return {}
        async with _guarded("destinations"), self._uow() as accounts:
            return await accounts.destinations(provider, fund_account_ids)


__all__ = [
    "FundAccount",
    "FundAccountBook",
    "FundAccountBookError",
    "SqlFundAccountBook",
    "SqlFundAccounts",
    "Validation",
]
