"""`ExchangeWithdrawalProvider`: pays a player's crypto address by a withdrawal from an exchange account, through
ccxt's unified `withdraw` / `fetch_withdrawals` / `fetch_deposit_withdraw_fees`, so the exchange is configuration.

Never twice at the exchange (exchanges keep no idempotency for withdrawals):
- the rail's record (`exchange_withdrawals`) is committed in `submitting` BEFORE `withdraw` is called;
- a definitive answer moves it to `sent` (the exchange's id is the provider reference) or `not_sent` (refused, or
  the request never left): only then may the payout be asked for again;
- no definitive answer (timeout, dropped connection, 5xx, a cancelled call) leaves it `submitting`: the rail never
  asks again, it looks for the withdrawal in `fetch_withdrawals` (by our client id where the exchange keeps one,
  else by address, memo, amount and time window, and then only while no other payout of that address, memo and
  amount is itself still `submitting` in the window) and, while it cannot find exactly one, answers
  `timeout_unknown_outcome` (never `payout_not_found`): after `operator_after_s` it logs that an operator must
  decide (docs/runbooks/crypto-exchange-withdrawals.md), and the payout counts in
  `prizeflow_payouts_stuck{kind="unknown_outcome"}`, which alert PrizeflowPayoutsAwaitingOperator reads.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.errors import PayoutError, PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import (
    DestinationType,
    PayoutInstruction,
    PayoutLookup,
    ProviderPayoutResult,
    ProviderPayoutStatus,
    ProviderType,
    Quote,
    StatementLine,
    StatementPage,
    WebhookEvent,
)
from prizeflow_payouts.adapters.exchange.classify import ExchangeErrors
from prizeflow_payouts.adapters.exchange.client import ccxt_exchange
from prizeflow_payouts.adapters.exchange.options import AssetRoute, Credentials, ExchangeOptions, MemoRule
from prizeflow_payouts.adapters.exchange.statement import Cursor, lines_of, windows
from prizeflow_payouts.adapters.exchange.store import (
    KnowsClientIds,
    SqlWithdrawalBook,
    WithdrawalBook,
    WithdrawalBookError,
    WithdrawalRecord,
    WithdrawalState,
)
from prizeflow_payouts.application.rail import may_have_landed
from prizeflow_reconciliation.statements import ReconError
from prizeflow_runtime.errors import ErrorKind

log = logging.getLogger(__name__)
P = ProviderPayoutStatus
C = PayoutErrorCode

# ccxt's unified withdrawal statuses -> ours. `pending` is in flight; anything else unknown is asked again later.
STATUSES: Final[Mapping[str, ProviderPayoutStatus]] = {
    "pending": P.SUBMITTED,
    "ok": P.PAID,
    "failed": P.FAILED,
    "canceled": P.FAILED,
}
_T = TypeVar("_T")
_CLIENT_ID_LEN: Final = 32
_OWN_POOL_SIZE: Final = 2


def client_id_for(key: str) -> str:
    """Our client id of a payout's withdrawal: derived from its idempotency key, letters and digits only."""
    return ("pf" + hashlib.sha256(key.encode()).hexdigest())[:_CLIENT_ID_LEN]


class ExchangeWithdrawalProvider:
    """A crypto-exchange withdrawal rail. Holds the API credentials; never logs them, nor a full address."""

    provider_type = ProviderType.CRYPTO_EXCHANGE

    def __init__(
        self,
        options: ExchangeOptions,
        *,
        credentials: Credentials,
        exchange: Any | None = None,
        book: WithdrawalBook | None = None,
        database_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.errors = ExchangeErrors(exchange=options.exchange, provider=options.name)
        self._injected = exchange
        self._credentials = credentials
        # ccxt's async client binds its HTTP session and throttle to the event loop that first uses it: one client
        # per loop (one in a service; a test client's loop and the worker's may differ).
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}
        self._loaded: set[int] = set()
        if exchange is None:
            ccxt_exchange(options, credentials)  # built once now (no connection yet): start-up fails if it cannot be
        self._book = book
        self._pool: AsyncEngine | None = None
        self._owned: AsyncEngine | None = None
        self._database_url = database_url
        self._clock = clock
        self._imprecise: set[str] = set()  # assets whose configured precision the exchange rounds (logged once)

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"ExchangeWithdrawalProvider(name={self.name!r}, exchange={self.options.exchange!r})"

    # -- lifecycle (the `engine` and `database` parts) -------------------------------------------------------
    def bind_database(self, engine: AsyncEngine) -> None:
        """The service's pool (bootstrap): used, never disposed, by this provider."""
        self._pool = engine

    async def start(self) -> None:
        if self._book is not None:
            return
        db = self._pool
        if db is None:
            if self._database_url is None:
                raise RuntimeError(f"crypto_exchange provider {self.name!r} has no database: bootstrap binds one")
            from prizeflow_runtime.db import create_engine

            db = self._owned = create_engine(self._database_url, pool_size=_OWN_POOL_SIZE)
        self._book = SqlWithdrawalBook(db)

    @property
    def _exchange(self) -> Any:
        if self._injected is not None:
            return self._injected
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = ccxt_exchange(self.options, self._credentials)
        return client

    async def close(self) -> None:
        if self._injected is not None:
            await self._injected.close()
        loop = asyncio.get_running_loop()
        for owner, client in list(self._clients.items()):
            if owner is loop:
                await client.close()
            elif not owner.is_closed():
                asyncio.run_coroutine_threadsafe(client.close(), owner)
        self._clients.clear()
        if self._owned is not None:
            await self._owned.dispose()
            self._owned = None

    @property
    def book(self) -> WithdrawalBook:
        if self._book is None:
            raise PayoutProviderError.of(C.PROVIDER_UNAVAILABLE, "the rail has not started", provider=self.name)
        return self._book

    # -- validation (the `validator` part) ---------------------------------------------------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:  # noqa: PLR0911 - one check each
        """Refuse what this exchange account could never pay, before anything is recorded or sent."""
        dest = instruction.destination
        if dest.type is not DestinationType.CRYPTO_ADDRESS:
            return self._error(C.INVALID_DESTINATION, f"pays crypto_address destinations, not {dest.type.value}")
        route = self.options.routes.get(instruction.amount.asset)
        if route is None:
            return self._error(C.UNSUPPORTED_ASSET, f"provider {self.name} does not pay {instruction.amount.asset}")
        if route.address_pattern and not re.fullmatch(route.address_pattern, dest.address):
            return self._error(C.INVALID_DESTINATION, f"not a {route.network} address")
        if route.memo is MemoRule.REQUIRED and not dest.memo:
            return self._error(C.INVALID_DESTINATION, f"{route.currency} on {route.network} needs a memo/tag")
        if route.memo is MemoRule.FORBIDDEN and dest.memo:
            return self._error(C.INVALID_DESTINATION, f"{route.currency} on {route.network} takes no memo/tag")
        if instruction.amount.amount % route.step:
            return self._error(
                C.INVALID_REQUEST, f"{route.currency} on {route.network} withdraws {route.precision} decimal places"
            )
        return None

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, f"{self.options.exchange}: {message}", provider=self.name)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    # -- quote --------------------------------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        """The network's withdrawal fee as the exchange states it now; it comes out of the amount."""
        if (error := self.validate(instruction)) is not None:
            raise PayoutProviderError(error)
        route = self.options.routes[instruction.amount.asset]
        await self._markets()
        if not self._network_open(route):
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"withdrawals of {route.currency} on {route.network} suspended")
        fees = await self._call(lambda: self._exchange.fetch_deposit_withdraw_fees([route.currency]))
        fee = _network_fee(fees, route)
        if fee is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"no withdrawal fee stated for {route.network}")
        fee_minor = self._minor(fee, route)
        amount = instruction.amount
        if fee_minor >= amount.amount:
            raise self._refuse(C.AMOUNT_BELOW_MINIMUM, "the amount does not cover the network fee")
        return Quote(
            amount=amount,
            fee=Money(asset=amount.asset, amount=fee_minor),
            receive_amount=Money(asset=amount.asset, amount=amount.amount - fee_minor),
            expires_at=datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=self.options.quote_ttl_s),
        )

    def _network_open(self, route: AssetRoute) -> bool:
        currency = (getattr(self._exchange, "currencies", None) or {}).get(route.currency) or {}
        network = (currency.get("networks") or {}).get(route.network) or {}
        return network.get("withdraw") is not False

    # -- create -------------------------------------------------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        if (error := self.validate(instruction)) is not None:
            return self._failed(key, None, error, "refused")
        route = self.options.routes[instruction.amount.asset]
        await self._markets()  # before the record: a failure here sent nothing
        amount = self._decimal(instruction.amount.amount, route)
        if not self._exchange_keeps(route, amount):
            error = PayoutError.of(
                C.INVALID_REQUEST,
                f"{self.options.exchange}: {route.currency} on {route.network} would be rounded by the exchange's "
                f"precision: the providers file's precision for {route.asset} is finer than the exchange's",
                provider=self.name,
                provider_code=f"precision:{route.asset}"[:255],
                retryable=False,
            )
            return self._failed(key, None, error, "refused")
        record, fresh = await self.book.begin_request(
            WithdrawalRecord(
                payout_id=instruction.payout_id,
                provider=self.name,
                idempotency_key=key,
                client_id=client_id_for(key),
                state=WithdrawalState.SUBMITTING,
                asset=route.asset,
                amount=instruction.amount.amount,
                currency=route.currency,
                network=route.network,
                address=instruction.destination.address,
                memo=instruction.destination.memo,
                submitted_at=datetime.fromtimestamp(self._clock(), UTC),
            )
        )
        if not fresh:  # asked before: the outcome is found, never made again
            return await self._status(record, key)
        params: dict[str, Any] = {"network": route.network}
        if record.memo:
            params["tag"] = record.memo
        if self.options.client_id_param:
            params[self.options.client_id_param] = record.client_id
        try:
            tx = await self._exchange.withdraw(route.currency, amount, record.address, params)
        except Exception as err:  # noqa: BLE001 - every failure becomes a stable code below
            error = self.errors.classify(err, mutating=True)
            if may_have_landed(error):
                log.warning(
                    "%s: withdrawal outcome unknown (%s); it is reconciled, never asked again",
                    self.name,
                    error.code.value,
                    extra={"payout_id": instruction.payout_id},
                )
                raise PayoutProviderError(error) from None
            await self._after_withdraw(self.book.mark_not_sent(instruction.payout_id))
            if error.retryable:
                raise PayoutProviderError(error) from None
            return self._failed(key, None, error, "refused")
        wid = str(tx.get("id") or "")
        if not wid:
            # Accepted without an id: it exists, but can only be found by reconciliation.
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the exchange accepted the withdrawal without an id")
        if not await self._after_withdraw(self.book.mark_sent(instruction.payout_id, wid)):
            log.error("%s: withdrawal %s is already held by another payout", self.name, wid)
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the exchange answered an id another payout holds")
        return self._result(key, wid, tx, route, default=P.SUBMITTED)

    async def _after_withdraw(self, write: Awaitable[_T]) -> _T:
        """A write to the book once the exchange has answered: if it fails, the record stays `submitting` and the
        outcome is reconciled (the money may have moved), never asked for again."""
        try:
            return await write
        except WithdrawalBookError as err:
            log.error("%s: the withdrawal's answer could not be recorded (%s)", self.name, err.error.message)
            raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the answer could not be recorded; reconciled") from None

    # -- sync ---------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        record = await self.book.get(lookup.payout_id)
        if record is None or record.state is WithdrawalState.NOT_SENT:
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no withdrawal was made for this payout (asking again is safe)")
        return await self._status(record, lookup.idempotency_key)

    async def _status(self, record: WithdrawalRecord, key: str) -> ProviderPayoutResult:
        route = self.options.routes.get(record.asset)
        if route is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"asset {record.asset} is no longer configured")
        await self._markets()
        history = await self._history(record)
        if record.withdrawal_id is not None:
            tx = next((t for t in history if str(t.get("id")) == record.withdrawal_id), None)
            if tx is None:
                raise self._refuse(C.PROVIDER_UNAVAILABLE, "the withdrawal is not in the exchange's history yet")
            return self._result(key, record.withdrawal_id, tx, route)
        return await self._reconcile(record, key, route, history)

    async def _history(self, record: WithdrawalRecord) -> list[dict[str, Any]]:
        since = int((record.submitted_at.timestamp() - self.options.clock_skew_s) * 1000)
        params: dict[str, Any] = {}
        if self.options.client_id_param and record.withdrawal_id is None:
            params[self.options.client_id_param] = record.client_id
        found = await self._call(lambda: self._exchange.fetch_withdrawals(record.currency, since, None, params))
        return [dict(t) for t in found or []]

    async def _reconcile(
        self, record: WithdrawalRecord, key: str, route: AssetRoute, history: list[dict[str, Any]]
    ) -> ProviderPayoutResult:
        """A withdrawal asked for without a definitive answer: adopt the one exchange record that is ours."""
        candidates = [t for t in history if self._matches(record, route, t)]
        owned = await self.book.owned(self.name, [str(t.get("id")) for t in candidates])
        mine = [t for t in candidates if owned.get(str(t.get("id")), record.payout_id) == record.payout_id]
        alike = 0
        if mine and not self.options.client_id_param:
            # Matched by address, memo, amount and time only: a sibling payout of the same shape still in flight
            # (its answer not in yet) may own this withdrawal. Adopt nothing until it has settled. Its shape is the
            # withdrawal's, not this record's: a sibling asking for the amount plus the fee matches it as well.
            window = self.options.clock_skew_s + self.options.match_window_s
            amounts = {a for t in mine for a in self._amounts_asked(t, route)}
            alike = await self.book.alike_in_flight(record, window, sorted(amounts))
        if len(mine) == 1 and not alike:
            wid = str(mine[0]["id"])
            if await self.book.mark_sent(record.payout_id, wid):
                log.info("%s: withdrawal of unknown outcome found and adopted", self.name,
                         extra={"payout_id": record.payout_id})  # fmt: skip
                return self._result(key, wid, mine[0], route)
        age = self._clock() - record.submitted_at.timestamp()
        why = f"{len(mine)} matching withdrawals" if mine else "no matching withdrawal yet"
        if alike:
            why += f", {alike} other payouts of the same address, memo and amount in flight"
        if len(mine) > 1 or age > self.options.operator_after_s:
            log.error(
                "%s: withdrawal outcome still unknown after %ds (%s): an operator must decide, the rail never asks "
                "again (docs/runbooks/crypto-exchange-withdrawals.md)",
                self.name,
                int(age),
                why,
                extra={"payout_id": record.payout_id},
            )
        raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, f"outcome unknown: {why}; never asked again")

    def _matches(self, record: WithdrawalRecord, route: AssetRoute, tx: Mapping[str, Any]) -> bool:
        info = tx.get("info") or {}
        if self.options.client_id_param:
            return str(info.get(self.options.client_id_param) or "") == record.client_id and _same_address(record, tx)
        if not _same_address(record, tx):
            return False
        if tx.get("network") not in (None, route.network):
            return False
        amount = self._maybe_minor(tx.get("amount"), route)
        fee = self._maybe_minor(((tx.get("fee") or {}).get("cost")), route) or 0
        if amount is None or record.amount not in (amount, amount + fee):
            return False
        at = (tx.get("timestamp") or 0) / 1000
        start = record.submitted_at.timestamp() - self.options.clock_skew_s
        return start <= at <= start + self.options.clock_skew_s + self.options.match_window_s

    def _amounts_asked(self, tx: Mapping[str, Any], route: AssetRoute) -> tuple[int, ...]:
        """The amounts a withdrawal could have been asked for, as `_matches` reads it: its amount, or plus its fee."""
        amount = self._maybe_minor(tx.get("amount"), route)
        if amount is None:
            return ()
        fee = self._maybe_minor(((tx.get("fee") or {}).get("cost")), route) or 0
        return (amount, amount + fee)

    # -- results ------------------------------------------------------------------------------------------------
    def _result(
        self,
        key: str,
        wid: str,
        tx: Mapping[str, Any],
        route: AssetRoute,
        *,
        default: ProviderPayoutStatus | None = None,
    ) -> ProviderPayoutResult:
        raw = str(tx.get("status") or "")
        status = STATUSES.get(raw, default) if raw else default
        if status is None:
            raise self._refuse(C.PROVIDER_UNAVAILABLE, f"unknown withdrawal status {raw[:40]!r}")
        if status is P.FAILED:
            error = PayoutError.of(
                C.TX_FAILED,
                f"{self.options.exchange}: the withdrawal {raw}",
                provider=self.name,
                provider_code=f"withdrawal:{raw}",
                retryable=False,
            )
            return self._failed(key, wid, error, raw)
        fee = None
        if status is P.PAID:
            cost = self._maybe_minor((tx.get("fee") or {}).get("cost"), route)
            fee = Money(asset=route.asset, amount=cost or 0)
        return ProviderPayoutResult(
            status=status, idempotency_key=key, provider_ref=wid, fee=fee, raw_status=raw or "requested"
        )

    def _failed(self, key: str, ref: str | None, error: PayoutError, raw: str) -> ProviderPayoutResult:
        return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, provider_ref=ref, error=error, raw_status=raw)

    # -- statement (the `statement` part) -----------------------------------------------------------------------------
    # The exchange takes its fee out of the amount asked for: a FEE line is part of its PAYOUT line's amount, so
    # the balance moved by PAYOUT - REVERSAL (never + FEE); the payout's recorded fee is what books it.
    fees_inside_payout: Final = True

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """The lines of the withdrawal history in [since, until) (statement.py says what each becomes), one page of
        the history per call."""
        try:
            at = Cursor.decode(cursor)
        except ValueError as err:
            raise self._refuse(C.INVALID_REQUEST, str(err)) from None
        spans = windows(since, until, self.options.statement_lookback_s)
        if at.window >= len(spans):
            return StatementPage(lines=())
        start, end = spans[at.window]
        size = self.options.statement_page_size
        params = {"startTime": start, "endTime": end, "offset": at.offset, "limit": size}
        rows = await self._call(lambda: self._exchange.fetch_withdrawals(None, None, None, params))
        rows = [dict(t) for t in rows or []]
        try:
            lines = lines_of(
                rows, since=since, until=until, routes=self.options.routes, client_id_param=self.options.client_id_param
            )
        except (KeyError, TypeError, ValueError) as err:
            raise self._refuse(
                C.PROVIDER_UNAVAILABLE, f"unreadable withdrawal history ({type(err).__name__})"
            ) from None
        lines = await self._our_keys(lines)
        if len(rows) >= size:
            following: Cursor | None = Cursor(at.window, at.offset + len(rows))
        elif at.window + 1 < len(spans):
            following = Cursor(at.window + 1, 0)
        else:
            following = None
        return StatementPage(lines=tuple(lines), next_cursor=following.encode() if following else None)

    async def _our_keys(self, lines: list[StatementLine]) -> list[StatementLine]:
        """A line's `reference` as our idempotency key where the rail's book knows the client id it carries (every
        withdrawal of one payout, a second one included, names the same payout); a client id it never sent stays as
        it is (it names no payout of ours)."""
        book: object = self._book  # a WithdrawalBook that may also know client ids
        ids = sorted({x.reference for x in lines if x.reference is not None})
        if not ids or not isinstance(book, KnowsClientIds):
            return lines
        keys = await book.keys_of(self.name, ids)
        return [x.model_copy(update={"reference": keys.get(x.reference or "", x.reference)}) for x in lines]

    # -- unsupported --------------------------------------------------------------------------------------------
    # -- a person settles an unknown outcome (the reconciliation queue, two people) -------------------------------
    async def settle_unknown_outcome(self, payout_id: str, found_ref: str | None, actor: str) -> None:
        """Record what two people found in the exchange's history for a withdrawal of unknown outcome: made, under
        `found_ref` (the next sync maps its status), or never made (`None`: the next attempt asks again with the same
        client id). Only a withdrawal still `submitting` is settled; settling it again the same way changes nothing,
        another way is refused."""
        record = await self.book.settle(payout_id, found_ref, resolved_by=actor)
        wanted = WithdrawalState.SENT if found_ref is not None else WithdrawalState.NOT_SENT
        if (
            record is None
            or record.state is not wanted
            or (found_ref is not None and record.withdrawal_id != found_ref)
        ):
            state = "no withdrawal" if record is None else record.state.value
            raise ReconError(
                ErrorKind.CONFLICT,
                "not_settleable",
                f"{self.name}: the withdrawal of payout {payout_id} is {state}, not one of unknown outcome "
                "(or another payout holds that withdrawal id)",
            )
        log.warning("%s: withdrawal of unknown outcome settled by people", self.name, extra={"payout_id": payout_id})

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        raise self._refuse(C.UNSUPPORTED_OPERATION, "withdrawals cannot be cancelled through the API")

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise self._refuse(C.UNSUPPORTED_OPERATION, "the rail has no webhooks: its status is polled")

    # -- amounts (never floats in our books) ---------------------------------------------------------------------
    @staticmethod
    def _decimal(minor: int, route: AssetRoute) -> str:
        value = Decimal(minor).scaleb(-route.scale).quantize(Decimal(1).scaleb(-route.precision))
        return f"{value:f}"

    @staticmethod
    def _minor(value: Any, route: AssetRoute) -> int:
        """An exchange amount (ccxt gives floats or strings) in minor units, exactly at the asset's scale."""
        try:
            dec = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"not an amount: {value!r}") from None
        return int(dec.scaleb(route.scale).to_integral_value(rounding=ROUND_HALF_EVEN))

    def _maybe_minor(self, value: Any, route: AssetRoute) -> int | None:
        if value is None:
            return None
        try:
            return self._minor(value, route)
        except ValueError:
            return None

    # -- the exchange -------------------------------------------------------------------------------------------
    async def _markets(self) -> None:
        exchange = self._exchange
        if id(exchange) in self._loaded:
            return
        await self._call(exchange.load_markets)
        self._loaded.add(id(exchange))
        for route in self.options.routes.values():  # a precision finer than the exchange's is said at once
            self._exchange_keeps(route, self._decimal(route.step, route))

    def _exchange_keeps(self, route: AssetRoute, amount: str) -> bool:
        """Whether ccxt's `withdraw` sends `amount` unchanged: it rounds silently to the network's precision
        (`currency_to_precision`), and a changed amount is never sent. Logged once per asset."""
        try:
            rounded = self._exchange.currency_to_precision(route.currency, amount, route.network)
            kept = Decimal(str(rounded)) == Decimal(amount)
        except Exception as err:  # noqa: BLE001 - the currency unknown to the exchange, or its precision unreadable
            kept, rounded = False, f"unreadable ({type(err).__name__})"
        if not kept and route.asset not in self._imprecise:
            self._imprecise.add(route.asset)
            log.error(
                "%s: %s on %s: the exchange rounds %s to %s; the providers file's precision (%d) for asset %s is "
                "finer than the exchange's: its payouts are refused until it is fixed",
                self.name,
                route.currency,
                route.network,
                amount,
                rounded,
                route.precision,
                route.asset,
            )
        return kept

    async def _call(self, fn: Callable[[], Awaitable[Any]]) -> Any:
        """A read (never the withdrawal): every failure is a `PayoutProviderError` with a stable code."""
        try:
            return await fn()
        except PayoutProviderError:
            raise
        except Exception as err:  # noqa: BLE001
            raise PayoutProviderError(self.errors.classify(err, mutating=False)) from None


def _same_address(record: WithdrawalRecord, tx: Mapping[str, Any]) -> bool:
    address = tx.get("address") or tx.get("addressTo")
    tag = tx.get("tag") or tx.get("tagTo") or None
    return address == record.address and (tag or None) == (record.memo or None)


def _network_fee(fees: Mapping[str, Any], route: AssetRoute) -> Any:
    entry = (fees or {}).get(route.currency) or {}
    network = ((entry.get("networks") or {}).get(route.network) or {}).get("withdraw") or {}
    if network.get("fee") is not None:
        return network["fee"]
    return (entry.get("withdraw") or {}).get("fee")


__all__ = ["STATUSES", "ExchangeWithdrawalProvider", "client_id_for"]
