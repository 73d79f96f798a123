"""Discrepancies injected into the bot's Star transactions (`POST /_emulator/discrepancies`), each shown the way
`getStarTransactions` would show such an event. Telegram carries nothing of ours on a gift: `reference` is the
gift purchase's transaction id (what the rail keeps as the payout's provider reference); amounts are Stars.

| kind | what `getStarTransactions` then shows |
|---|---|
| `unrequested` | an outgoing `gift_purchase` to `destination` (a user id) of `amount` Stars nobody asked for |
| `missing` | the purchase is gone from the list (its Stars back in the balance) |
| `amount` | the purchase's `amount` is `amount` |
| `destination` | the purchase's receiver is the user `destination` |
| `duplicate` | a second outgoing `gift_purchase`, same user, gift and amount, a new id |
| `reversal` | Telegram refunded the purchase to the bot: an incoming `gift_purchase` carrying the purchase's id (whole
|             | purchases only, as Telegram refunds them) |
| `fee` | an outgoing transaction to `TransactionPartnerTelegramApi` of `amount` Stars: Telegram's charge to the bot.
|       | Nothing in it names the gift: the rail's statement cannot tie it to the payout |

The answer's `line_id` is the statement line the rail's adapter makes of it: the transaction id, or `<id>:refund`
for a refund of a purchase (which carries the purchase's id); `null` for `missing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from prizeflow_telegram_emulator.state import Books, Transaction

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})
ASSET: Final = "XTR"


class DiscrepancyError(ValueError):
    """A discrepancy that cannot be injected; `status` is the admin API's answer (400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def inject(books: Books, body: Mapping[str, Any], now: int) -> str | None:  # noqa: PLR0911 - a kind each
    """Apply one discrepancy to the books; the statement line id it made or changed (None for `missing`)."""
    kind = str(body.get("kind") or "")
    if kind not in KINDS:
        raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
    if kind == "unrequested":
        if str(body.get("asset") or ASSET) != ASSET:
            raise DiscrepancyError(400, f"a bot pays Telegram Stars ({ASSET}) only")
        return _outgoing(books, _stars(body), _user(body), None, now).id
    purchase = _find(books, body.get("reference"))
    if kind == "missing":
        books.transactions.remove(purchase)
        if not purchase.refunded:
            books.balance += purchase.amount
        return None
    if kind == "amount":
        purchase.amount = _stars(body)
        return purchase.id
    if kind == "destination":
        purchase.user_id = _user(body)
        return purchase.id
    if kind == "duplicate":
        return _outgoing(books, purchase.amount, purchase.user_id, purchase.gift_id, now).id
    if kind == "reversal":
        if body.get("amount") is not None and _stars(body) != purchase.amount:
            raise DiscrepancyError(400, "Telegram refunds a whole gift purchase, never part of one")
        if purchase.refunded:
            raise DiscrepancyError(400, "the purchase is refunded already")
        refund = books.refund_gift(purchase.id)
        refund.date = now
        return f"{refund.id}:refund"
    fee = Transaction(
        books.next_id("api"),
        _stars(body),
        now,
        incoming=False,
        user_id=0,
        transaction_type="telegram_api",
        request_count=1,
    )
    books.transactions.append(fee)
    books.balance -= fee.amount
    return fee.id


def _outgoing(books: Books, stars: int, user_id: int, gift_id: str | None, now: int) -> Transaction:
    tx = Transaction(
        books.next_id("gift"), stars, now, incoming=False, user_id=user_id, transaction_type="gift_purchase",
        gift_id=gift_id,
    )  # fmt: skip
    books.transactions.append(tx)
    books.balance -= stars
    return tx


def _find(books: Books, reference: Any) -> Transaction:
    if not reference:
        raise DiscrepancyError(400, "this kind needs `reference`: the gift purchase's transaction id")
    found = next(
        (
            t
            for t in books.transactions
            if t.id == str(reference) and not t.incoming and t.transaction_type == "gift_purchase"
        ),
        None,
    )
    if found is None:
        raise DiscrepancyError(404, "no outgoing gift purchase has this transaction id")
    return found


def _stars(body: Mapping[str, Any]) -> int:
    raw = body.get("amount")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise DiscrepancyError(400, "`amount` is a positive integer of Stars")
    return raw


def _user(body: Mapping[str, Any]) -> int:
    raw = str(body.get("destination") or "")
    if not raw.isdigit() or int(raw) <= 0:
        raise DiscrepancyError(400, "`destination` is a Telegram user id")
    return int(raw)


__all__ = ["ASSET", "KINDS", "DiscrepancyError", "inject"]
