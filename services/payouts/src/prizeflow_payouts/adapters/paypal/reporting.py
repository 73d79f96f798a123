"""The PayPal rail's statement (its `statement` part): PayPal's Transaction Search (`GET /v1/reporting/transactions`),
a page per cursor (the page's number), read as lines by `statement.py`. A line is named by our key when its
transaction, or the one it refers to, is an item the rail's books know; a payment the books do not name yet (paid by
webhook before any sync read it, or a second item under one of our keys) is looked for in our batches made in the
hours before the window, and what is found is kept in the books (a return 30 days on then names it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import StatementLine, StatementPage
from prizeflow_contracts.rails import paypal_wire as wire
from prizeflow_payouts.adapters.paypal.book import PayPalBooks
from prizeflow_payouts.adapters.paypal.client import PayPalClient
from prizeflow_payouts.adapters.paypal.statement import statement_lines, transactions

C = PayoutErrorCode
# A payment the books do not name is looked for in our batches made from this long before the window (an item is
# debited when its batch is processed, minutes after it was made; a return 30 days later refers to a payment named
# by then).
BATCH_SCAN: Final = timedelta(hours=6)
PAYMENTS: Final = frozenset({"T0001"})  # PayPal's MassPay payment (`statement.CODES`)
STATEMENT_PAGE: Final = 500  # transactions per page of Transaction Search (PayPal's maximum)


class PayPalStatement:
    def __init__(self, provider: str, http: PayPalClient, books: Callable[[], PayPalBooks]) -> None:
        self.provider = provider
        self.http = http
        self.books = books
        self.page_size = STATEMENT_PAGE

    async def _items_of(self, payout_batch_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Every item of these batches of ours: its transaction id -> (its `sender_item_id`, its item id)."""
        found: dict[str, tuple[str, str]] = {}
        for batch_id in payout_batch_ids:
            try:
                async for raw in self.http.batch_items(batch_id):
                    try:
                        item = wire.read_item(raw)
                    except (KeyError, TypeError, ValueError):
                        continue
                    if item.transaction_id is not None and item.sender_item_id is not None:
                        found[item.transaction_id] = (item.sender_item_id, item.payout_item_id)
            except PayoutProviderError as err:
                if not (err.error.provider_code or "").startswith("404:"):
                    raise  # a 404: PayPal no longer shows the batch; its payments are found without it
        return found

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        """What PayPal's Transaction Search lists in [since, until), a page per cursor (the page's number)."""
        page = int(cursor) if cursor is not None and cursor.isdigit() and 0 < len(cursor) < 7 else 1
        params = {
            "start_date": _iso(since),
            "end_date": _iso(until - timedelta(seconds=1) if until > since else until),
            "fields": "all",
            "page_size": self.page_size,
            "page": page,
        }
        doc = await self.http.call("GET", "/v1/reporting/transactions", params=params, mutating=False)
        try:
            infos = transactions(doc)
        except (KeyError, TypeError, ValueError):
            raise PayoutProviderError(
                self.http.errors.error(C.PROVIDER_UNAVAILABLE, "PayPal's transactions could not be read")
            ) from None
        refs = sorted({r for t in infos for r in (t.transaction_id, t.reference_id) if r is not None})
        async with self.books()("statement") as book:
            ours = await book.keys_of(self.provider, refs) if refs else {}
            unknown = [t for t in infos if t.event_code in PAYMENTS and t.transaction_id not in ours]
            scanned = await book.answered_between(self.provider, since - BATCH_SCAN, until) if unknown else []
        if scanned:  # payments the books do not name yet (paid by webhook, or a second item): our batches say whose
            by_tx = await self._items_of(scanned)
            learned = {t.transaction_id: by_tx[t.transaction_id] for t in unknown if t.transaction_id in by_tx}
            async with self.books()("learned") as book:  # kept: a later window (a return 30 days on) names them
                for tx, (key, item) in learned.items():
                    await book.seen(self.provider, key, item, tx)
            ours |= learned
        lines: list[StatementLine] = []
        for t in infos:
            if since <= t.occurred_at < until:
                found = ours.get(t.transaction_id) or (ours.get(t.reference_id) if t.reference_id else None)
                lines.extend(statement_lines(t, found))
        more = page < int(doc.get("total_pages") or 1)
        return StatementPage(lines=tuple(lines), next_cursor=str(page + 1) if more else None)


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["BATCH_SCAN", "STATEMENT_PAGE", "PayPalStatement"]
