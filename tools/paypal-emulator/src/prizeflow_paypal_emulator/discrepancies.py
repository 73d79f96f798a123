"""Discrepancies injected into the provider's books (`POST /_emulator/discrepancies`, ADR 0011), each shown the way
PayPal's payouts (`GET /v1/payments/payouts...`) and Transaction Search (`GET /v1/reporting/transactions`) would
show such an event. None of them sends a webhook: the books differ silently, which is what a reconciliation is for.

| kind | what the books then show |
|---|---|
| `unrequested` | a paid item nobody asked for (a batch without `sender_batch_id`, an item without |
|               | `sender_item_id`) of `amount` `asset` to `destination` (an email, a phone number or a payer id), |
|               | debited with its fee |
| `missing` | the item gone from its batch and its movements gone from Transaction Search (its money back) |
| `amount` | the item's amount (and its T0001 debit) is `amount` |
| `destination` | the item went to `destination` |
| `duplicate` | a second paid item in the same batch, same `sender_item_id`, amount and receiver, debited again |
| `reversal` | a T1114 credit of `amount` (default: all of the amount not yet given back); the whole of it makes the |
|            | item REVERSED |
| `fee` | the item's fee (and its T0104 line) grows by `amount` |

`reference` names the item: its `payout_item_id`, its `transaction_id` or its `sender_item_id` (the first item so
named). Amounts are minor units of the item's currency (`asset`, when given, must be it). The answer's `line_id` is the
Transaction Search line made or changed: the item's `transaction_id` for its T0001 line, the T0104 line's id for a fee,
the T1114 line's id for a reversal, None for `missing`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from prizeflow_paypal_emulator.bodies import valid_receiver
from prizeflow_paypal_emulator.books import FEE, REVERSAL, Books, counterparty
from prizeflow_paypal_emulator.entities import Batch, Item, new_id
from prizeflow_paypal_emulator.money import CURRENCIES, units
from prizeflow_paypal_emulator.rules import Outcome, Status

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})


class DiscrepancyError(ValueError):
    """A discrepancy that cannot be injected; `status` is the admin API's answer (400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def inject(books: Books, body: Mapping[str, Any]) -> str | None:  # noqa: PLR0911 - a kind each
    """Apply one discrepancy; the Transaction Search line it made or changed (None for `missing`)."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
    if kind == "unrequested":
        return _unrequested(books, body)
    item = _find(books, body.get("reference"))
    asset = body.get("asset")
    if asset not in (None, item.currency):
        raise DiscrepancyError(400, f"asset is the item's currency, {item.currency}")
    if kind == "missing":
        _missing(books, item)
        return None
    if item.transaction_id is None:
        raise DiscrepancyError(400, f"the item is {item.status.value}: no money ever left for it")
    line = books.lines[item.transaction_id]
    if kind == "amount":
        value = units(_amount(body), item.currency)
        item.value, line.value = value, -value
        return line.transaction_id
    if kind == "destination":
        item.recipient_type, item.receiver = _destination(body)
        line.counterparty = counterparty(item)
        return line.transaction_id
    if kind == "duplicate":
        twin = _place(books, books.batches[item.payout_batch_id], item.recipient_type, item.receiver, item.value,
                      item.currency, item.sender_item_id, item.note)  # fmt: skip
        assert twin.transaction_id is not None
        return twin.transaction_id
    if kind == "fee":
        extra = units(_amount(body), item.currency)
        fees = books.item_lines(item, FEE)
        item.fee += extra
        if fees:
            fees[0].value -= extra
            return fees[0].transaction_id
        return books.record(FEE, item, -extra, item.currency, line.at, subject="MassPay fee").transaction_id
    left = item.value - books.given_back(item)
    value = left if body.get("amount") is None else units(_amount(body), item.currency)
    if not Decimal(0) < value <= left:
        raise DiscrepancyError(400, f"a reversal is of at most what has not come back yet ({left} {item.currency})")
    made = books.record(REVERSAL, item, value, item.currency, books.now(), subject="Payout reversed")
    if value == left:
        item.status = Status.REVERSED
        line.status, line.updated_at = "V", made.at
    return made.transaction_id


def _missing(books: Books, item: Item) -> None:
    """As if PayPal never made it: the item and its movements hidden; its batch too once it holds nothing."""
    item.hidden, item.due_at = True, None
    for ln in books.lines.values():
        if ln.item_id == item.payout_item_id:
            ln.hidden = True
    batch = books.batches[item.payout_batch_id]
    if not books.batch_items(batch):
        batch.hidden = True


def _unrequested(books: Books, body: Mapping[str, Any]) -> str:
    asset = body.get("asset")
    if not isinstance(asset, str) or asset not in CURRENCIES:
        raise DiscrepancyError(400, f"asset is required: one of {sorted(CURRENCIES)}")
    recipient_type, receiver = _destination(body)
    now = books.now()
    batch = Batch(new_id(), None, {}, now, [], status="SUCCESS", started=True, time_completed=now)
    books.batches[batch.payout_batch_id] = batch
    item = _place(books, batch, recipient_type, receiver, units(_amount(body), asset), asset, None, None)
    assert item.transaction_id is not None
    return item.transaction_id


def _place(  # noqa: PLR0917 - an item's facts, as Item takes them
    books: Books,
    batch: Batch,
    recipient_type: str,
    receiver: str,
    value: Decimal,
    currency: str,
    sender_item_id: str | None,
    note: str | None,
) -> Item:
    """An item PayPal paid by itself: SUCCESS and debited, no webhook."""
    now = books.now()
    item = Item(new_id(), batch.payout_batch_id, books.next_seq(), recipient_type, receiver, value, currency,
                sender_item_id, note, {}, Outcome.SUCCESS, None, None, processed=True, time_processed=now)  # fmt: skip
    books.items[item.payout_item_id] = item
    batch.item_ids.append(item.payout_item_id)
    item.transaction_id = new_id(17)
    books.record("T0001", item, -value, currency, now, transaction_id=item.transaction_id, note=note,
                 counterparty=counterparty(item))  # fmt: skip
    fee = books.fee_for(currency)
    if fee > 0:
        books.record(FEE, item, -fee, currency, now, subject="MassPay fee")
    item.fee, item.status = fee, Status.SUCCESS
    return item


def _destination(body: Mapping[str, Any]) -> tuple[str, str]:
    destination = body.get("destination")
    if isinstance(destination, str):
        for recipient_type in ("EMAIL", "PHONE", "PAYPAL_ID"):
            if valid_receiver(recipient_type, destination):
                return recipient_type, destination
    raise DiscrepancyError(400, "destination is required: an email, a phone number or a PayPal payer id")


def _find(books: Books, reference: Any) -> Item:
    if not isinstance(reference, str) or not reference:
        raise DiscrepancyError(400, "this kind needs `reference`: a payout_item_id, transaction_id or sender_item_id")
    for item in sorted(books.items.values(), key=lambda i: i.seq):
        if not item.hidden and reference in (item.payout_item_id, item.transaction_id, item.sender_item_id):
            return item
    raise DiscrepancyError(404, "no item has this payout_item_id, transaction_id or sender_item_id")


def _amount(body: Mapping[str, Any]) -> int:
    raw = body.get("amount")
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise DiscrepancyError(400, "amount is a positive integer in minor units of the currency")
    return raw


__all__ = ["KINDS", "DiscrepancyError", "inject"]
