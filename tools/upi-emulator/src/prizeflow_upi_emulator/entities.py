"""RazorpayX's entities as the emulator keeps them, and their JSON (docs: api/x/contacts/entity, fund-accounts/entity,
account-validation/entity, payouts/entity, transactions/entity). Amounts are integers in paise; times are Unix
seconds of the emulator's clock."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any, Final

from prizeflow_upi_emulator.rules import Rule, Status

_ALPHABET: Final = string.ascii_letters + string.digits
# The bank's name, from the first four letters of an IFSC (what RazorpayX shows as `bank_name`).
BANKS: Final = {
    "HDFC": "HDFC Bank",
    "ICIC": "ICICI Bank",
    "SBIN": "State Bank of India",
    "UTIB": "Axis Bank",
    "KKBK": "Kotak Mahindra Bank",
    "YESB": "Yes Bank",
    "RATN": "RBL Bank",
    "PUNB": "Punjab National Bank",
    "BARB": "Bank of Baroda",
    "IDFB": "IDFC First Bank",
}


def new_id(prefix: str = "") -> str:
    """Razorpay's ids: a prefix and 14 letters and digits (`pout_…`); without a prefix, a webhook's event id."""
    tail = "".join(secrets.choice(_ALPHABET) for _ in range(14))
    return f"{prefix}_{tail}" if prefix else tail


def new_utr(mode: str) -> str:
    """A bank reference: a 12-digit RRN for UPI and IMPS, a bank's reference for NEFT and RTGS."""
    digits = "".join(secrets.choice(string.digits) for _ in range(12))
    return digits if mode in ("UPI", "IMPS") else f"RATN{mode[0]}{digits[:11]}"


@dataclass
class Contact:
    id: str
    name: str
    email: str | None
    contact: str | None
    type: str | None
    reference_id: str | None
    notes: dict[str, str]
    created_at: int
    active: bool = True

    @property
    def identity(self) -> tuple[str | None, ...]:
        """What makes a contact new: RazorpayX answers the existing one when all of these match."""
        return (self.name, self.email, self.contact, self.type, self.reference_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "contact",
            "name": self.name,
            "contact": self.contact,
            "email": self.email,
            "type": self.type,
            "reference_id": self.reference_id,
            "batch_id": None,
            "active": self.active,
            "notes": dict(self.notes),
            "created_at": self.created_at,
        }


@dataclass
class FundAccount:
    id: str
    contact_id: str
    account_type: str  # vpa | bank_account
    created_at: int
    vpa: str | None = None
    holder: str | None = None  # bank_account.name
    ifsc: str | None = None
    account_number: str | None = None
    active: bool = True

    @property
    def destination(self) -> str:
        """What rules and discrepancies match: `user@psp`, or `IFSC/account_number`."""
        return self.vpa if self.vpa is not None else f"{self.ifsc}/{self.account_number}"

    @property
    def identity(self) -> tuple[str | None, ...]:
        return (self.contact_id, self.account_type, self.vpa, self.holder, self.ifsc, self.account_number)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "entity": "fund_account",
            "contact_id": self.contact_id,
            "account_type": self.account_type,
        }
        if self.vpa is not None:
            username, _, handle = self.vpa.partition("@")
            out["vpa"] = {"username": username, "handle": handle, "address": self.vpa}
        else:
            code = (self.ifsc or "")[:4]
            out["bank_account"] = {
                "ifsc": self.ifsc,
                "bank_name": BANKS.get(code, f"{code} Bank"),
                "name": self.holder,
                "account_number": self.account_number,
                "notes": [],
            }
        return {**out, "active": self.active, "batch_id": None, "created_at": self.created_at}


@dataclass
class FundAccountValidation:
    id: str
    fund_account_id: str
    amount: int | None  # the penny of a bank account's penny drop; None for a VPA
    notes: dict[str, str]
    created_at: int
    due_at: float | None
    status: str = "created"  # created | completed | failed
    account_status: str | None = None  # active | invalid
    registered_name: str | None = None
    utr: str | None = None

    def to_json(self, fund_account: FundAccount) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "fund_account.validation",
            "fund_account": fund_account.to_json(),
            "status": self.status,
            "amount": self.amount,
            "currency": "INR" if self.amount is not None else None,
            "notes": dict(self.notes),
            "results": {"account_status": self.account_status, "registered_name": self.registered_name},
            "created_at": self.created_at,
            "utr": self.utr,
        }


@dataclass
class Payout:
    id: str
    seq: int
    fund_account_id: str
    amount: int
    mode: str
    purpose: str
    reference_id: str | None
    narration: str | None
    notes: dict[str, str]
    queue_if_low_balance: bool
    created_at: int
    idempotency_key: str | None
    rule: Rule | None
    status: Status | None = None
    status_details: dict[str, str] | None = None
    fees: int = 0  # fee plus tax, charged when processing starts
    tax: int = 0
    utr: str | None = None
    debited: bool = False  # its payout transaction exists
    due_at: float | None = None  # when the bank's next word about it is due
    hidden: bool = False  # gone from the provider's books (a `missing` discrepancy)

    def to_json(self, account_number: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": "payout",
            "fund_account_id": self.fund_account_id,
            "amount": self.amount,
            "currency": "INR",
            "notes": dict(self.notes),
            "fees": self.fees,
            "tax": self.tax,
            "status": self.status.value if self.status else None,
            "purpose": self.purpose,
            "utr": self.utr,
            "mode": self.mode,
            "reference_id": self.reference_id,
            "narration": self.narration,
            "debit_account_number": account_number if self.debited else None,
            "batch_id": None,
            "status_details": dict(self.status_details) if self.status_details else None,
            "created_at": self.created_at,
            "fee_type": "",
        }


@dataclass
class Transaction:
    """One movement of the business account. A payout's debit is read from the payout (its amount and fees as they
    stand); every other kind carries its own amounts. The running `balance` is computed when the statement is read."""

    id: str
    seq: int
    created_at: int
    kind: str  # payout | reversal | bank_transfer | fund_account.validation
    subject_id: str  # the payout, validation or bank transfer it belongs to
    credit: int = 0
    debit: int = 0
    source: dict[str, Any] = field(default_factory=dict)  # for kinds other than payout
    hidden: bool = False


@dataclass(frozen=True)
class Event:
    id: str  # X-Razorpay-Event-Id
    event: str
    created_at: int
    subject_id: str
    body: bytes  # the payload as it was when the event happened


__all__ = [
    "BANKS",
    "Contact",
    "Event",
    "FundAccount",
    "FundAccountValidation",
    "Payout",
    "Transaction",
    "new_id",
    "new_utr",
]
