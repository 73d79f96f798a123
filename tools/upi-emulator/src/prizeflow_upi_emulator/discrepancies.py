"""Discrepancies injected into the provider's books (`POST /_emulator/discrepancies`, ADR 0011), each shown the way
RazorpayX's payouts and account statement (`GET /v1/payouts`, `GET /v1/transactions`) would show such an event. None
of them sends a webhook: the books differ silently, which is what a reconciliation is for.

| kind | what the books then show |
|---|---|
| `unrequested` | a processed payout nobody asked for (no `reference_id`, no idempotency key) of `amount` |
|               | to `destination` (a VPA `user@psp`, or `IFSC/account_number`), debited with its fees |
| `missing` | the payout gone from the payouts and its transactions gone from the statement (its money back) |
| `amount` | the payout's `amount` (and its debit) is `amount` |
| `destination` | the payout went to `destination` (a new fund account of the same contact) |
| `duplicate` | a second processed payout, same `reference_id`, amount, mode and fund account, debited again |
| `reversal` | a reversal transaction of `amount` (default: all not yet returned, fees included); the whole of it |
|            | makes the payout `reversed` |
| `fee` | the payout's `fees` grow by `amount` (its debit with them) |

`reference` names the payout: its id, its `reference_id` or its idempotency key (the first payout so named). Amounts
are paise; `asset`, when given, must be `INR`. The answer's `line_id` is the statement line a rail's adapter makes of
it: the payout's transaction id for its payout line, `<txn id>:fee` for its fee, the reversal transaction's id for a
reversal, None for `missing`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from prizeflow_upi_emulator.books import Books
from prizeflow_upi_emulator.entities import Contact, FundAccount, Payout, new_id, new_utr
from prizeflow_upi_emulator.rules import Status

KINDS: Final = frozenset({"unrequested", "missing", "amount", "destination", "duplicate", "reversal", "fee"})
_BANK_DESTINATION: Final = re.compile(r"([A-Z]{4}0[A-Z0-9]{6})/([a-zA-Z0-9]{5,35})")


class DiscrepancyError(ValueError):
    """A discrepancy that cannot be injected; `status` is the admin API's answer (400 or 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def inject(books: Books, body: Mapping[str, Any]) -> str | None:  # noqa: PLR0911, PLR0912 - a kind each
    """Apply one discrepancy; the statement line id it made or changed (None for `missing`)."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise DiscrepancyError(400, f"kind must be one of {sorted(KINDS)}")
    if body.get("asset") not in (None, "INR"):
        raise DiscrepancyError(400, "asset is INR (the only currency of a RazorpayX account)")
    if kind == "unrequested":
        return _unrequested(books, body)
    payout = _find(books, body.get("reference"))
    if kind == "missing":
        payout.hidden = True
        for txn in books.transactions.values():
            if txn.subject_id == payout.id:
                txn.hidden = True
        return None
    if not payout.debited:
        raise DiscrepancyError(400, f"the payout is {payout.status}: it never left the account")
    line = _payout_line(books, payout)
    if kind == "amount":
        payout.amount = _amount(body)
        return line
    if kind == "destination":
        payout.fund_account_id = _fund_account(books, body, books.contacts[_contact_of(books, payout)]).id
        return line
    if kind == "duplicate":
        return _place(
            books,
            replace(
                payout,
                id=new_id("pout"),
                seq=books.next_seq(),
                idempotency_key=None,
                utr=new_utr(payout.mode),
                hidden=False,
                due_at=None,
                notes=dict(payout.notes),
            ),
        )
    if kind == "fee":
        payout.fees += _amount(body)
        return f"{line}:fee"
    left = payout.amount + payout.fees - books.returned(payout)
    amount = left if body.get("amount") is None else _amount(body)
    if not 0 < amount <= left:
        raise DiscrepancyError(400, f"a reversal is of at most what has not come back yet ({left} paise)")
    txn = books.give_back(payout, amount, books.now())
    if amount == left and payout.status is not Status.REVERSED:
        payout.status = Status.REVERSED
    return txn.id


def _unrequested(books: Books, body: Mapping[str, Any]) -> str:
    amount = _amount(body)
    contact = Contact(new_id("cont"), "Unknown", None, None, None, None, {}, int(books.now()))
    books.contacts[contact.id] = contact
    fa = _fund_account(books, body, contact)
    mode = "UPI" if fa.vpa is not None else "IMPS"
    fees, tax = books.fee_for(mode)
    payout = Payout(
        id=new_id("pout"),
        seq=books.next_seq(),
        fund_account_id=fa.id,
        amount=amount,
        mode=mode,
        purpose="payout",
        reference_id=None,
        narration=None,
        notes={},
        queue_if_low_balance=False,
        created_at=int(books.now()),
        idempotency_key=None,
        rule=None,
        fees=fees,
        tax=tax,
        utr=new_utr(mode),
    )
    return _place(books, payout)


def _place(books: Books, payout: Payout) -> str:
    """A payout the provider made by itself: processed and debited, no webhook."""
    payout.status, payout.debited = Status.PROCESSED, True
    payout.status_details = {
        "reason": "payout_processed",
        "source": "beneficiary_bank",
        "description": "Payout is processed and the money has been credited into the beneficiary account.",
    }
    books.payouts[payout.id] = payout
    return books.record("payout", payout.id, books.now()).id


def _payout_line(books: Books, payout: Payout) -> str:
    return next(t.id for t in books.transactions.values() if t.kind == "payout" and t.subject_id == payout.id)


def _contact_of(books: Books, payout: Payout) -> str:
    return books.fund_accounts[payout.fund_account_id].contact_id


def _fund_account(books: Books, body: Mapping[str, Any], contact: Contact) -> FundAccount:
    destination = body.get("destination")
    if not isinstance(destination, str) or not destination:
        raise DiscrepancyError(400, "destination is required: a VPA user@psp, or IFSC/account_number")
    now = int(books.now())
    bank = _BANK_DESTINATION.fullmatch(destination)
    if bank is not None:
        fa = FundAccount(
            new_id("fa"),
            contact.id,
            "bank_account",
            now,
            holder=contact.name,
            ifsc=bank.group(1),
            account_number=bank.group(2),
        )
    elif "@" in destination:
        fa = FundAccount(new_id("fa"), contact.id, "vpa", now, vpa=destination)
    else:
        raise DiscrepancyError(400, "destination is a VPA user@psp, or IFSC/account_number")
    books.fund_accounts[fa.id] = fa
    return fa


def _find(books: Books, reference: Any) -> Payout:
    if not isinstance(reference, str) or not reference:
        raise DiscrepancyError(400, "this kind needs `reference`: a payout id, reference_id or idempotency key")
    for payout in sorted(books.payouts.values(), key=lambda p: p.seq):
        if not payout.hidden and reference in (payout.id, payout.reference_id, payout.idempotency_key):
            return payout
    raise DiscrepancyError(404, "no payout has this id, reference_id or idempotency key")


def _amount(body: Mapping[str, Any]) -> int:
    raw = body.get("amount")
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 1:
        raise DiscrepancyError(400, "amount is a positive integer in paise")
    return raw


__all__ = ["KINDS", "DiscrepancyError", "inject"]
