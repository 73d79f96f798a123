"""PayPal's objects as the emulator keeps them, and their JSON (docs: payments.payouts-batch/v1 `payout_batch`,
`payout_batch_items`, `payout_item_detail`; transaction-search/v1 `transaction_info`). Amounts are `Decimal` in the
item's currency; times are Unix seconds of the emulator's clock."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from prizeflow_paypal_emulator.money import amount, iso, money, reporting_time
from prizeflow_paypal_emulator.rules import ITEM_ERRORS, Outcome, Status

_ALPHANUM: Final = string.ascii_uppercase + string.digits
API_ERRORS_LINK: Final = "https://developer.paypal.com/docs/api/payments.payouts-batch/#errors"


def new_id(length: int = 13) -> str:
    """PayPal's ids: a payout batch or item id (13 capitals and digits), a transaction id (17)."""
    return "".join(secrets.choice(_ALPHANUM) for _ in range(length))


def new_event_id() -> str:
    return f"WH-{new_id(17)}-{new_id(17)}"


def link(href: str, rel: str, method: str = "GET") -> dict[str, str]:
    return {"href": href, "rel": rel, "method": method, "encType": "application/json"}


@dataclass
class Item:
    payout_item_id: str
    payout_batch_id: str
    seq: int
    recipient_type: str
    receiver: str
    value: Decimal
    currency: str
    sender_item_id: str | None
    note: str | None
    extra: dict[str, Any]  # what else the item carried (recipient_wallet, purpose, ...), echoed in `payout_item`
    outcome: Outcome
    error: str | None  # the `errors.name` processing gives it (FAILED, BLOCKED, UNCLAIMED)
    due_at: float | None  # when processing (or, UNCLAIMED, the return) is due
    status: Status = Status.PENDING
    transaction_id: str | None = None
    fee: Decimal = Decimal(0)  # charged and not given back
    time_processed: float | None = None
    shown_error: str | None = None  # the error an answer shows now
    processed: bool = False  # its batch's processing reached it (a PENDING item then stays so)
    cancelled: bool = False  # RETURNED by POST .../cancel
    hidden: bool = False  # gone from the provider's books (a `missing` discrepancy)

    @property
    def debited(self) -> bool:
        """Its T0001 line exists (the money left the balance at some point)."""
        return self.transaction_id is not None

    def payout_item(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recipient_type": self.recipient_type,
            "amount": amount(self.value, self.currency),
            "receiver": self.receiver,
            **({"note": self.note} if self.note is not None else {}),
            **({"sender_item_id": self.sender_item_id} if self.sender_item_id is not None else {}),
            "recipient_wallet": "PAYPAL",
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def to_json(self, base_url: str, sender_batch_id: str | None, *, detail: bool) -> dict[str, Any]:
        """As GET /v1/payments/payouts-item/{id} shows it (`detail`), or as its batch lists it."""
        out: dict[str, Any] = {"payout_item_id": self.payout_item_id}
        if self.transaction_id is not None:
            out["transaction_id"] = self.transaction_id
        out["transaction_status"] = self.status.value
        out["payout_item_fee"] = amount(self.fee, self.currency)
        out["payout_batch_id"] = self.payout_batch_id
        if detail and sender_batch_id is not None:
            out["sender_batch_id"] = sender_batch_id
        out["payout_item"] = self.payout_item()
        if self.time_processed is not None:
            out["time_processed"] = iso(self.time_processed)
        if self.shown_error is not None:
            out["errors"] = {
                "name": self.shown_error,
                "message": ITEM_ERRORS.get(self.shown_error, self.shown_error.replace("_", " ").capitalize()),
                "information_link": API_ERRORS_LINK,
                "details": [],
            }
        item_url = f"{base_url}/v1/payments/payouts-item/{self.payout_item_id}"
        if detail:
            out["links"] = [
                link(item_url, "self"),
                link(f"{base_url}/v1/payments/payouts/{self.payout_batch_id}", "batch"),
            ]
        else:
            out["links"] = [link(item_url, "item")]
        return out


@dataclass
class Batch:
    payout_batch_id: str
    sender_batch_id: str | None
    sender_batch_header: dict[str, Any]  # as sent
    created_at: float
    item_ids: list[str]
    status: str = "PENDING"  # PENDING | PROCESSING | SUCCESS | DENIED
    started: bool = False  # processing began (items left PENDING now mean PROCESSING)
    time_completed: float | None = None
    hidden: bool = False

    def header(self, items: list[Item]) -> dict[str, Any]:
        """`batch_header` with the amount paid and the fees (in the first item's currency)."""
        out: dict[str, Any] = {
            "payout_batch_id": self.payout_batch_id,
            "batch_status": self.status,
            "time_created": iso(self.created_at),
        }
        if self.time_completed is not None:
            out["time_completed"] = iso(self.time_completed)
        out["sender_batch_header"] = dict(self.sender_batch_header)
        if items:
            currency = items[0].currency
            chosen = [i for i in items if i.currency == currency]
            out["amount"] = amount(sum((i.value for i in chosen), Decimal(0)), currency)
            out["fees"] = amount(sum((i.fee for i in chosen), Decimal(0)), currency)
        return out


@dataclass
class Line:
    """One money movement of the account, as Transaction Search lists it: `amount` signed (a debit is negative)."""

    transaction_id: str
    seq: int
    at: float
    code: str  # the T-code
    item_id: str | None  # the payout item it belongs to (None: a top-up)
    value: Decimal
    currency: str
    status: str = "S"  # S | P | V | D
    updated_at: float | None = None
    reference_id: str | None = None  # the item's transaction id
    subject: str | None = None  # the batch's email subject
    note: str | None = None  # the item's note
    counterparty: dict[str, Any] = field(default_factory=dict)  # payer_info: who was paid
    hidden: bool = False

    def to_json(self, account_id: str, *, payer_info: bool) -> dict[str, Any]:
        info: dict[str, Any] = {
            "paypal_account_id": account_id,
            "transaction_id": self.transaction_id,
        }
        if self.reference_id is not None:
            info["paypal_reference_id"] = self.reference_id
            info["paypal_reference_id_type"] = "TXN"
        info.update(
            {
                "transaction_event_code": self.code,
                "transaction_initiation_date": reporting_time(self.at),
                "transaction_updated_date": reporting_time(self.updated_at or self.at),
                "transaction_amount": money(self.value, self.currency),
                "fee_amount": money(Decimal(0), self.currency),
                "transaction_status": self.status,
            }
        )
        if self.subject is not None:
            info["transaction_subject"] = self.subject
        if self.note is not None:
            info["transaction_note"] = self.note
        out: dict[str, Any] = {"transaction_info": info}
        if payer_info and self.counterparty:
            out["payer_info"] = dict(self.counterparty)
        return out


@dataclass(frozen=True)
class Event:
    id: str  # WH-...
    event_type: str
    created_at: float
    subject_id: str  # the payout item or batch
    body: bytes  # the event as it was delivered (its CRC32 is signed)


__all__ = ["API_ERRORS_LINK", "Batch", "Event", "Item", "Line", "link", "new_event_id", "new_id"]
