"""PayPal's Transaction Search (`GET /v1/reporting/transactions?fields=all`) read as statement lines.

Each `transaction_details[]` is one movement of our balance: its `transaction_info` (a signed `transaction_amount`,
PayPal's event code, and a `fee_amount` when PayPal folds a fee into the movement) and, for a payment, `payer_info`
(who was paid). What the line is comes from PayPal's event code, whoever it paid:

| code | line |
|---|---|
| T0001 (MassPay payment) | PAYOUT to the `payer_info`'s email, phone or PayPal id |
| T0104 (MassPay fee) | FEE |
| T1114 (MassPay reversal: a return, a cancel, PayPal's reversal), T1115 (the receiver's refund) | REVERSAL |
| T1108 (a fee given back) | CREDIT |
| anything else (T0300 a top-up, a withdrawal...) | CREDIT or DEBIT, by its sign |

A line is ours when its `transaction_id`, or the transaction it refers to (`paypal_reference_id`: the item's, on its
fee, return, refund or reversal), is a payout item the books know: it carries our key and PayPal's item id. A
movement of no payout of ours carries no key and, as its reference, the PayPal payment it belongs to (its fee rides
on it), for reconciliation to find.
A denied transaction (`transaction_status` D) moved nothing and is not listed.

`PayPalStatement` is the rail's `statement` part: a page per cursor (the page's number), read as lines by the pure
`statement_lines`. A line is named by our key when its transaction, or the one it refers to, is an item the rail's
books know; a payment the books do not name yet (paid by webhook before any sync read it, or a second item under one
of our keys) is looked for in our batches made in the hours before the window, and what is found is kept in the books
(a return 30 days on then names it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from prizeflow_contracts.errors import PayoutErrorCode, PayoutProviderError
from prizeflow_contracts.providers import StatementLine, StatementLineKind, StatementPage
from prizeflow_contracts.rails import paypal_wire as wire
from prizeflow_contracts.rails.paypal_wire import minor_units
from prizeflow_payouts.adapters.paypal.book import PayPalBooks
from prizeflow_payouts.adapters.paypal.client import PayPalClient

K = StatementLineKind


DENIED: Final = "D"


# PayPal's event code -> the line, when its sign is the line's (money out for a payout or a fee).
CODES: Final[Mapping[str, StatementLineKind]] = {
    "T0001": K.PAYOUT,
    "T0104": K.FEE,
    "T1114": K.REVERSAL,
    "T1115": K.REVERSAL,
    "T1108": K.CREDIT,
}


_OUT: Final = frozenset({K.PAYOUT, K.FEE, K.DEBIT})


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: str
    reference_id: str | None  # the transaction this one refers to (a fee's, a return's, a refund's)
    occurred_at: datetime
    currency: str
    amount: int  # signed: negative is money out of our balance
    fee: int  # signed, as PayPal lists it (a fee is negative)
    event_code: str
    status: str
    destination: str | None  # who was paid (`payer_info`), spelled as a paypal destination's address


def _at(value: Any) -> datetime:
    """PayPal's `2026-11-28T10:00:00+0000` (or with `Z` / `+00:00`), aware."""
    text = str(value)
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if at.tzinfo is None:
        raise ValueError("a transaction time without its offset")
    return at.astimezone(UTC)


def _signed(doc: Any) -> tuple[str, int]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("currency_code"), str):
        raise ValueError("an amount: {currency_code, value}")
    value = str(doc.get("value") or "0")
    amount = minor_units(value.removeprefix("-"), doc["currency_code"])
    return doc["currency_code"], -amount if value.startswith("-") else amount


def _payee(payer: Any) -> str | None:
    if not isinstance(payer, Mapping):
        return None
    phone = payer.get("phone_number")
    if isinstance(phone, Mapping) and isinstance(phone.get("national_number"), str):
        country = phone.get("country_code")  # PayPal's `{country_code, national_number}`: E.164 is both
        digits = (str(country) if isinstance(country, (str, int)) else "") + str(phone["national_number"])
        return "+" + digits.lstrip("+")
    found = payer.get("email_address") or payer.get("account_id")
    return found if isinstance(found, str) and found else None


def transactions(doc: Mapping[str, Any]) -> list[Transaction]:
    """The page's transactions; ValueError for a page PayPal would not answer."""
    details = doc.get("transaction_details")
    if not isinstance(details, list):
        raise ValueError("transaction_details: a list")
    out = []
    for detail in details:
        info = detail.get("transaction_info") if isinstance(detail, Mapping) else None
        if not isinstance(info, Mapping) or not isinstance(info.get("transaction_id"), str):
            raise ValueError("transaction_info: a transaction")
        currency, amount = _signed(info.get("transaction_amount"))
        fee = _signed(info["fee_amount"])[1] if isinstance(info.get("fee_amount"), Mapping) else 0
        reference = info.get("paypal_reference_id")
        out.append(
            Transaction(
                transaction_id=info["transaction_id"],
                reference_id=reference if isinstance(reference, str) and reference else None,
                occurred_at=_at(info.get("transaction_initiation_date")),
                currency=currency,
                amount=amount,
                fee=fee,
                event_code=str(info.get("transaction_event_code") or "")[:16],
                status=str(info.get("transaction_status") or "")[:8],
                destination=_payee(detail.get("payer_info")),
            )
        )
    return out


def statement_lines(t: Transaction, ours: tuple[str, str] | None) -> list[StatementLine]:
    """The lines of one transaction; `ours`: our key and PayPal's item id when it is one of our payouts'."""
    if t.status == DENIED:
        return []
    # Ours: our key and PayPal's item (as the payout recorded it). Another's: PayPal's payment it belongs to, so a
    # payment nobody of ours asked for is one finding with its fee in it, not a second one about the fee.
    key, item = ours if ours is not None else (None, t.reference_id or t.transaction_id)
    common: dict[str, Any] = {"occurred_at": t.occurred_at, "asset": t.currency, "reference": key, "provider_ref": item}
    raw = f"{t.event_code}/{t.status}"
    lines = []
    if t.amount:
        kind = CODES.get(t.event_code)
        if kind is None or (kind in _OUT) != (t.amount < 0):
            kind = K.DEBIT if t.amount < 0 else K.CREDIT
        payee = t.destination if kind is K.PAYOUT else None
        lines.append(
            StatementLine(
                line_id=t.transaction_id, kind=kind, amount=abs(t.amount), destination=payee, raw_type=raw, **common
            )
        )
    if t.fee:
        kind = K.FEE if t.fee < 0 else K.CREDIT  # a fee given back is money in that no payout gave
        lines.append(
            StatementLine(line_id=f"{t.transaction_id}:fee", kind=kind, amount=abs(t.fee), raw_type=raw, **common)
        )
    return lines


# -- the rail's statement part ---------------------------------------------------------------------------------------
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


__all__ = ["BATCH_SCAN", "CODES", "STATEMENT_PAGE", "PayPalStatement", "Transaction", "statement_lines", "transactions"]
