"""`TelegramGiftProvider`: pays a prize in Telegram Stars as a Telegram gift of that star price, sent by the bot
from its own Star balance (`sendGift`) through `python-telegram-bot`. What the Bot API does not allow is refused,
never approximated (docs/adr/0009): no Star transfer to a user, no arbitrary amount, no cancel, no webhooks.

`sendGift` has no idempotency key and answers only `True`, so the rail keeps books (`telegram_gift_sends`):
- a row in `sending` is committed BEFORE the call; while it is there the rail never calls `sendGift` again for
  that payout;
- the payout is `paid` only once the gift is matched to one of the bot's outgoing Star transactions
  (`getStarTransactions`: a `gift_purchase` to that user for that price, not matched to another payout); its id
  is the provider reference;
- a call Telegram refused (4xx, 429, no connection) moved nothing: the row is `refused`, the payout may be
  retried; a call of unknown outcome (timeout, 5xx) stays `sending` and is settled from the transactions: found
  -> paid; not found `settle_after_s` after the call, and Telegram never said True -> `refused`
  (`payout_not_found`: creating again is safe);
- at most one unsettled gift per player and price (a unique index), so a transaction is never ambiguous;
- a gift Telegram refunded to the bot (an incoming `gift_purchase` with the purchase's id) is reported `returned`
  by every sync, however long after `paid`; the row stays `sent` (final: the database refuses moving it).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

import telegram
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
    StatementLineKind,
    StatementPage,
    WebhookEvent,
)
from prizeflow_payouts.adapters.telegram import journal as q
from prizeflow_payouts.adapters.telegram.classify import TelegramErrors
from prizeflow_payouts.adapters.telegram.options import ASSET, TelegramOptions
from prizeflow_payouts.adapters.telegram.statement import (
    ATTRIBUTION_WINDOW_S,
    CLOCK_SKEW_S,
    Sent,
    attribute,
    lines_in,
)
from prizeflow_payouts.application.rail import may_have_landed
from prizeflow_runtime.sql_uow import SqlUnitOfWork, unit_of_work
from telegram import error as tg
from telegram.request import HTTPXRequest

log = logging.getLogger(__name__)
C = PayoutErrorCode
P = ProviderPayoutStatus

USER_ID_RE: Final = re.compile(r"^[1-9][0-9]{0,15}$")
GIFT_PURCHASE: Final = "gift_purchase"
REFUNDED: Final = "gift_purchase_refunded"
_PAGE: Final = 100
_CLOCK_SKEW_S: Final = 60.0  # Telegram's transaction dates are its clock's, in whole seconds
_FLOOR_AGE_S: Final = 86_400.0  # transactions older than this are not scanned again by this process
# Loggers of python-telegram-bot and httpx that write request URLs, which carry the bot token (/bot<token>/...).
_URL_LOGGERS: Final = (
    "httpx",
    "telegram",
    "telegram.Bot",
    "telegram.request.BaseRequest",
    "telegram.request.HTTPXRequest",
)


class _RedactToken(logging.Filter):
    """Replaces the bot token in any record of the libraries' loggers (a URL carries it), and drops
    python-telegram-bot's DEBUG lines (a call's parameters name the player)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("telegram") and record.levelno < logging.INFO:
            return False  # the library's DEBUG lines carry every call's parameters: players' Telegram ids
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "<bot-token>"), None
        return True


@dataclass(frozen=True, slots=True)
class _Row:
    payout_id: str
    idempotency_key: str
    user_id: int
    gift_id: str
    star_count: int
    state: str
    answered: bool
    transaction_id: str | None
    started_at: float
    first_started_at: float
    now: float


@dataclass(frozen=True, slots=True)
class _Tx:
    id: str
    amount: int
    date: float
    user_id: int


class TelegramGiftProvider:
    """The Telegram gifts rail's parts (`factory.telegram_rail`): payouts, validator, fixed amounts, engine.
    Holds the bot token; never logs it, nor a player's Telegram id."""

    provider_type = ProviderType.TELEGRAM_IF_SUPPORTED

    def __init__(
        self,
        options: TelegramOptions,
        *,
        token: str,
        request: HTTPXRequest | None = None,
    ) -> None:
        self.options = options
        self.errors = TelegramErrors(options.name)
        for name in _URL_LOGGERS:  # before the Bot exists: it logs its URL when built
            logger = logging.getLogger(name)
            if not any(isinstance(f, _RedactToken) and f.token == token for f in logger.filters):
                logger.addFilter(_RedactToken(token))
        timeout = options.timeout_s
        self._request = request or HTTPXRequest(
            connection_pool_size=16,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=min(timeout, 3.0),
            pool_timeout=1.0,
        )
        self._bot = telegram.Bot(token, base_url=f"{options.api_base}/bot", request=self._request)
        self._uow: SqlUnitOfWork[q.TelegramBooks] | None = None
        self._floor = 0  # an offset of getStarTransactions below which every transaction is old

    @property
    def name(self) -> str:
        return self.options.name

    def __repr__(self) -> str:
        return f"TelegramGiftProvider(name={self.name!r})"

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def bind_database(self, engine: AsyncEngine) -> None:
        """The service's pool (bootstrap): the rail's books live in the payouts database, each step of the rail one
        unit of work (the runtime's) on them."""
        self._uow = unit_of_work(engine, q.TelegramBooks)

    async def start(self) -> None:
        await self._request.initialize()

    async def close(self) -> None:
        await self._request.shutdown()

    def _books(self) -> SqlUnitOfWork[q.TelegramBooks]:
        if self._uow is None:
            raise RuntimeError(f"telegram provider {self.name!r} has no database: bootstrap binds one")
        return self._uow

    # -- validation (the `validator` part): before anything is reserved or created -----------------------------------
    def validate(self, instruction: PayoutInstruction) -> PayoutError | None:
        dest, amount = instruction.destination, instruction.amount
        if dest.type is not DestinationType.TELEGRAM_USER or not USER_ID_RE.fullmatch(dest.address):
            return self._error(C.INVALID_DESTINATION, "a telegram_user destination is the player's numeric user id")
        if amount.asset != ASSET:
            return self._error(
                C.UNSUPPORTED_ASSET, f"Telegram pays Stars ({ASSET}) only, as a gift, not {amount.asset}"
            )
        if amount.amount not in self.options.prices:
            payable = ", ".join(str(p) for p in sorted(self.options.prices))
            return self._error(
                C.UNSUPPORTED_OPERATION,
                f"no configured gift costs {amount.amount} stars; Telegram cannot send an arbitrary amount of Stars "
                f"to a user (payable: {payable})",
            )
        return None

    def payable_amounts(self, asset: str) -> tuple[int, ...]:
        """The `amounts` part: the gifts' prices, announced to rewards (a claim of another amount is refused there,
        before anything is reserved)."""
        return tuple(sorted(self.options.prices)) if asset == ASSET else ()

    def _error(self, code: PayoutErrorCode, message: str) -> PayoutError:
        return PayoutError.of(code, f"telegram: {message}", provider=self.name)

    def _refuse(self, code: PayoutErrorCode, message: str) -> PayoutProviderError:
        return PayoutProviderError(self._error(code, message))

    # -- what the Bot API does not allow ------------------------------------------------------------------------
    async def quote(self, instruction: PayoutInstruction) -> Quote:
        raise self._refuse(C.UNSUPPORTED_OPERATION, "the player receives a gift, not Stars: nothing to quote")

    async def cancel(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        raise self._refuse(C.UNSUPPORTED_OPERATION, "a gift cannot be cancelled or taken back once sent")

    async def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookEvent:
        raise self._refuse(C.UNSUPPORTED_OPERATION, "the Telegram rail has no webhooks")

    # -- create ---------------------------------------------------------------------------------------------------
    async def create_payout(self, instruction: PayoutInstruction) -> ProviderPayoutResult:
        key = instruction.idempotency_key
        if (error := self.validate(instruction)) is not None:
            return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, error=error, raw_status="refused")
        user_id = int(instruction.destination.address)
        stars = instruction.amount.amount
        gift_id = self.options.prices[stars]
        row = await self._get(instruction.payout_id)
        if row is not None and row.state != "refused":
            return await self._settle(row)  # sent, or sending: never called again
        if (repriced := await self._repriced(gift_id, stars)) is not None:
            return ProviderPayoutResult(status=P.FAILED, idempotency_key=key, error=repriced, raw_status="refused")
        await self._begin(instruction.payout_id, key, user_id, gift_id, stars, resend=row is not None)
        try:
            await self._bot.send_gift(gift_id=gift_id, user_id=user_id, text=self.options.text)
        except tg.TelegramError as err:
            error = self.errors.classify(err, mutating=True)
            if not may_have_landed(error):
                await self._exec(q.REFUSED, payout_id=instruction.payout_id, code=error.code.value)
            raise PayoutProviderError(error) from None
        await self._exec(q.ANSWERED, payout_id=instruction.payout_id)
        row = await self._get(instruction.payout_id)
        assert row is not None
        try:
            return await self._settle(row)
        except PayoutProviderError:
            # Telegram said True: the gift is sent; its transaction is matched by a later sync.
            return ProviderPayoutResult(status=P.SUBMITTED, idempotency_key=key, raw_status="gift_sent")

    async def _repriced(self, gift_id: str, stars: int) -> PayoutError | None:
        """Why the configured gift cannot pay `stars` now (None: it can). `sendGift` takes no price: the bot pays
        whatever the gift costs at that moment, so a gift Telegram repriced (or one priced wrongly in the providers
        file) would give the player more or less than the prize, and its transaction, of another amount, would
        never settle the payout. Read from `getAvailableGifts` just before the send; nothing is recorded or sent."""
        try:
            catalogue = await self._bot.get_available_gifts()
        except tg.TelegramError as err:
            raise PayoutProviderError(self.errors.classify(err, mutating=False)) from None
        gift = next((g for g in catalogue.gifts if g.id == gift_id), None)
        if gift is not None and int(gift.star_count) == stars:
            return None
        now = "is no longer on sale" if gift is None else f"costs {gift.star_count} stars now"
        log.error("telegram: the gift configured for %d stars %s: fix the providers file's gifts", stars, now)
        return self._error(C.UNSUPPORTED_OPERATION, f"the gift configured for {stars} stars {now}; nothing was sent")

    async def _begin(self, payout_id: str, key: str, user_id: int, gift_id: str, stars: int, *, resend: bool) -> None:
        """Commit the `sending` row (or move a refused one back to it) before the call."""
        try:
            if resend:
                changed = await self._exec(q.RESEND, payout_id=payout_id)
            else:
                changed = await self._exec(
                    q.INSERT_SENDING,
                    payout_id=payout_id,
                    key=key,
                    provider=self.name,
                    user_id=user_id,
                    gift_id=gift_id,
                    star_count=stars,
                )
        except IntegrityError:
            changed = 0
        if changed != 1:
            # Another gift of this price to this player is unsettled (or a concurrent attempt got here first):
            # nothing was sent; try again once it is settled.
            raise self._refuse(C.PROVIDER_UNAVAILABLE, "another gift of this price to this player is in flight")

    # -- sync -----------------------------------------------------------------------------------------------------
    async def sync_status(self, lookup: PayoutLookup) -> ProviderPayoutResult:
        row = await self._get(lookup.payout_id)
        if row is None or row.state == "refused":
            raise self._refuse(C.PAYOUT_NOT_FOUND, "no gift was sent for this payout (creating again is safe)")
        return await self._settle(row)

    async def _settle(self, row: _Row) -> ProviderPayoutResult:
        """Paid once matched to the bot's outgoing transaction, `returned` once Telegram refunded that transaction
        to the bot (the Stars came back: the player has no gift); raises while the outcome is unknown. A sent row
        stays sent whatever is read later: only the status reported says what Telegram did since."""
        try:
            # From the FIRST call: a late transaction of an earlier call (before a send again) is this payout's.
            txs, refunded = await self._outgoing(since=row.first_started_at - _CLOCK_SKEW_S)
        except tg.TelegramError as err:
            raise PayoutProviderError(self.errors.classify(err, mutating=False)) from None
        if row.state == "sent":
            return self._paid(row, str(row.transaction_id), refunded=str(row.transaction_id) in refunded)
        mine = [t for t in txs if t.user_id == row.user_id and t.amount == row.star_count]
        async with self._books()() as books:
            claimed = await books.claimed([t.id for t in mine])
        unclaimed = [t for t in mine if t.id not in claimed]
        for tx in unclaimed:
            try:
                if await self._exec(q.MATCHED, payout_id=row.payout_id, tx=tx.id) == 1:
                    if len(unclaimed) > 1:
                        # One gift in flight per player and price: another outgoing gift of that player and price
                        # since this payout's first call is one no payout holds, e.g. an earlier call landing late.
                        log.error(
                            "telegram: %d outgoing gift(s) of this player and price match no payout: a gift may "
                            "have been sent twice (docs/runbooks/telegram-gift-payouts.md)",
                            len(unclaimed) - 1,
                            extra={"payout_id": row.payout_id, "transaction_ids": [t.id for t in unclaimed]},
                        )
                    return self._paid(row, tx.id, refunded=tx.id in refunded)
            except IntegrityError:
                continue  # matched to another payout meanwhile
            fresh = await self._get(row.payout_id)
            if fresh is not None and fresh.state == "sent":
                return self._paid(fresh, str(fresh.transaction_id), refunded=str(fresh.transaction_id) in refunded)
        overdue = not row.answered and row.now - row.started_at >= self.options.settle_after_s
        if overdue and await self._exec(q.REFUSED, payout_id=row.payout_id, code="not_carried_out") == 1:
            log.warning("telegram: a gift of unknown outcome is not in the bot's transactions: may be sent again")
            raise self._refuse(C.PAYOUT_NOT_FOUND, "the gift is not in the bot's transactions: it was not sent")
        raise self._refuse(C.TIMEOUT_UNKNOWN_OUTCOME, "the gift's outcome is not settled yet (never sent again)")

    def _paid(self, row: _Row, tx_id: str, *, refunded: bool) -> ProviderPayoutResult:
        if refunded:
            log.error(
                "telegram: a gift's Stars were refunded to the bot after it was sent: reported returned "
                "(docs/runbooks/telegram-gift-payouts.md)",
                extra={"payout_id": row.payout_id, "transaction_id": tx_id},
            )
            return ProviderPayoutResult(
                status=P.RETURNED, idempotency_key=row.idempotency_key, provider_ref=tx_id, raw_status=REFUNDED
            )
        return ProviderPayoutResult(
            status=P.PAID,
            idempotency_key=row.idempotency_key,
            provider_ref=tx_id,
            fee=Money(asset=ASSET, amount=0),
            raw_status=GIFT_PURCHASE,
        )

    async def _outgoing(self, *, since: float) -> tuple[list[_Tx], set[str]]:
        """The bot's outgoing gift purchases dated from `since`, and the ids of gift purchases Telegram refunded to
        the bot (an incoming `gift_purchase` carries the id of the purchase it refunds), scanning
        `getStarTransactions` from the floor. The floor (below it every transaction is too old to settle anything)
        is stored and advanced page by page: a scan cut short by the worker's timeout, or a restart, resumes where
        it was; a refund is newer than its purchase, so it is always above the floor."""
        out: list[_Tx] = []
        refunded: set[str] = set()
        async with self._books()() as books:
            stored = await books.scan_floor(self.name)
        self._floor = max(self._floor, int(stored or 0))
        offset, floor, old = self._floor, self._floor, time.time() - _FLOOR_AGE_S
        while True:
            page = (await self._bot.get_star_transactions(offset=offset, limit=_PAGE)).transactions
            for n, t in enumerate(page):
                date = t.date.timestamp()
                if date < old and floor == offset + n:
                    floor += 1
                source, receiver = t.source, t.receiver
                if isinstance(source, telegram.TransactionPartnerUser) and source.transaction_type == GIFT_PURCHASE:
                    refunded.add(str(t.id))
                if (
                    isinstance(receiver, telegram.TransactionPartnerUser)
                    and receiver.transaction_type == GIFT_PURCHASE
                    and date >= since
                ):
                    out.append(_Tx(str(t.id), int(t.amount), date, int(receiver.user.id)))
            if floor > self._floor:
                await self._exec(q.ADVANCE_FLOOR, provider=self.name, floor=floor)
                self._floor = floor
            if len(page) < _PAGE:
                break
            offset += _PAGE
        return out, refunded

    # -- statement (the `statement` part) ------------------------------------------------------------------------------
    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """The bot's Star transactions dated in [since, until), one `getStarTransactions` page per call (statement.py
        says what each becomes). The list is chronological: the first call finds the window's first offset by a
        binary search over one-transaction pages (about 2·log2(n) calls); the cursor is the next page's offset."""
        size = self.options.statement_page_size
        try:
            if cursor is None:
                offset = await self._first_offset(since.timestamp())
            elif cursor.isdigit():
                offset = int(cursor)
            else:
                raise self._refuse(C.INVALID_REQUEST, "not a cursor of this rail's statement")
            page = (await self._bot.get_star_transactions(offset=offset, limit=size)).transactions
        except tg.TelegramError as err:
            raise PayoutProviderError(self.errors.classify(err, mutating=False)) from None
        lines, ended = lines_in(page, since=since, until=until, asset=ASSET)
        lines = await self._named(lines)
        following = None if ended or len(page) < size else str(offset + len(page))
        return StatementPage(lines=tuple(lines), next_cursor=following)

    async def _named(self, lines: list[StatementLine]) -> list[StatementLine]:
        """The lines with our idempotency key where the rail's books name their payout (statement.attribute)."""
        ids = sorted({x.provider_ref for x in lines if x.provider_ref is not None})
        if not ids:
            return lines
        stray = [x for x in lines if x.kind is StatementLineKind.PAYOUT and x.destination and x.destination.isdigit()]
        async with self._books()() as books:
            claimed = await books.keys_of(self.name, ids)
            stray = [x for x in stray if x.provider_ref not in claimed]
            sent: list[Sent] = []
            if stray:
                dates = [x.occurred_at.timestamp() for x in stray]
                found = await books.sent_to(
                    self.name,
                    sorted({int(str(x.destination)) for x in stray}),
                    min(dates) - ATTRIBUTION_WINDOW_S,
                    max(dates) + CLOCK_SKEW_S,
                )
                sent = [Sent(int(r[0]), int(r[1]), str(r[2]), float(r[3])) for r in found]
        return attribute(lines, claimed, sent)

    async def _first_offset(self, since: float) -> int:
        """The offset of the first transaction dated at or after `since` (the list's length if none is)."""

        async def before(offset: int) -> bool:
            page = (await self._bot.get_star_transactions(offset=offset, limit=1)).transactions
            return bool(page) and page[0].date.timestamp() < since

        low, step = 0, 1  # every offset below `low` is dated before `since`
        while await before(low + step - 1):
            low, step = low + step, step * 2
        high = low + step - 1  # dated at or after `since`, or past the end
        while low < high:
            mid = (low + high) // 2
            if await before(mid):
                low = mid + 1
            else:
                high = mid
        return low

    # -- books ----------------------------------------------------------------------------------------------------
    async def _get(self, payout_id: str) -> _Row | None:
        async with self._books()() as books:
            found = await books.get(payout_id)
        if found is None:
            return None
        r: dict[str, Any] = dict(found)
        return _Row(
            payout_id=r["payout_id"],
            idempotency_key=r["idempotency_key"],
            user_id=int(r["user_id"]),
            gift_id=r["gift_id"],
            star_count=int(r["star_count"]),
            state=r["state"],
            answered=bool(r["answered"]),
            transaction_id=r["transaction_id"],
            started_at=float(r["started_at"]),
            first_started_at=float(r["first_started_at"]),
            now=float(r["now"]),
        )

    async def _exec(self, statement: Any, **params: Any) -> int:
        async with self._books()() as books:
            return await books.change(statement, params)


__all__ = ["GIFT_PURCHASE", "USER_ID_RE", "TelegramGiftProvider"]
