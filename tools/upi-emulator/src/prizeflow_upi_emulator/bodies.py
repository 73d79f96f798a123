"""Request bodies and queries checked as RazorpayX documents them (api/x/contacts/create, fund-accounts/create,
payouts/create, transactions/fetch-all). Each refusal is a 400 `BAD_REQUEST_ERROR` naming the `field`; the wording
is the emulator's where RazorpayX does not document it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from prizeflow_upi_emulator.errors import RazorpayError
from prizeflow_upi_emulator.settings import MODES

PURPOSES: Final = ("refund", "cashback", "payout", "salary", "utility bill", "vendor bill")
CONTACT_TYPES: Final = ("vendor", "customer", "employee", "self")
_NAME: Final = re.compile(r"[a-zA-Z0-9 \u2019'\-_/().]{3,120}")  # RazorpayX's list, its curly apostrophe too
_VPA: Final = re.compile(r"[a-zA-Z0-9.\-_]{2,256}@[a-zA-Z0-9]{2,64}")
_IFSC: Final = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}")
_ACCOUNT: Final = re.compile(r"[a-zA-Z0-9]{5,35}")
_NARRATION: Final = re.compile(r"[a-zA-Z0-9 ]*")
IDEMPOTENCY_KEY: Final = re.compile(r"[A-Za-z0-9 _-]{4,36}")
MIN_PAYOUT: Final = 100  # paise: Re. 1
PAGE_DEFAULT: Final = 10
PAGE_MAX: Final = 100


def only(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """RazorpayX refuses a parameter it does not know."""
    extra = sorted(set(body) - allowed)
    if extra:
        raise RazorpayError.invalid(f"{', '.join(extra)} is/are not required and should not be sent", extra[0])


def opt_text(body: Mapping[str, Any], name: str, max_len: int, *, field: str | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    label = field or name
    if not isinstance(value, str):
        raise RazorpayError.invalid(f"The {label.replace('_', ' ')} must be a string.", label)
    if len(value) > max_len:
        raise RazorpayError.invalid(
            f"The {label.replace('_', ' ')} may not be greater than {max_len} characters.", label
        )
    return value


def req_text(body: Mapping[str, Any], name: str, max_len: int, *, field: str | None = None) -> str:
    value = opt_text(body, name, max_len, field=field)
    if not value:
        label = field or name
        raise RazorpayError.invalid(f"The {label.replace('_', ' ')} field is required.", label)
    return value


def notes(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("notes")
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise RazorpayError.invalid("The notes must be an object of key-value pairs.", "notes")
    if len(value) > 15:
        raise RazorpayError.invalid("Number of fields in notes should be less than or equal to 15", "notes")
    for key, item in value.items():
        if not isinstance(item, str | int) or isinstance(item, bool) or len(str(item)) > 256 or len(key) > 256:
            raise RazorpayError.invalid("Notes values are strings of at most 256 characters", "notes")
    return {k: str(v) for k, v in value.items()}


def account_number(body: Mapping[str, Any], ours: str, name: str = "account_number") -> None:
    value = req_text(body, name, 35)
    if value != ours:
        raise RazorpayError.invalid("The account number is invalid.", name)


@dataclass(frozen=True)
class ContactRequest:
    name: str
    email: str | None
    contact: str | None
    type: str | None
    reference_id: str | None
    notes: dict[str, str]


def contact_request(body: Mapping[str, Any]) -> ContactRequest:
    only(body, frozenset({"name", "email", "contact", "type", "reference_id", "notes"}))
    name = req_text(body, "name", 50)
    if len(name) < 3 or not _NAME.fullmatch(name) or not (name[-1].isalnum() or name[-1] == "."):
        raise RazorpayError.invalid("The name field is invalid.", "name")
    kind = opt_text(body, "type", 40)
    if kind is not None and kind not in CONTACT_TYPES:
        raise RazorpayError.invalid(f"Invalid type: {kind}", "type")
    return ContactRequest(
        name,
        opt_text(body, "email", 254),
        opt_text(body, "contact", 15),
        kind,
        opt_text(body, "reference_id", 40),
        notes(body),
    )


@dataclass(frozen=True)
class FundAccountRequest:
    contact_id: str
    account_type: str
    vpa: str | None = None
    holder: str | None = None
    ifsc: str | None = None
    account_number: str | None = None


def fund_account_request(body: Mapping[str, Any]) -> FundAccountRequest:
    only(body, frozenset({"contact_id", "account_type", "vpa", "bank_account"}))
    contact_id = req_text(body, "contact_id", 40)
    account_type = req_text(body, "account_type", 20)
    if account_type == "vpa":
        vpa = body.get("vpa")
        if not isinstance(vpa, dict):
            raise RazorpayError.invalid("The vpa field is required when account type is vpa.", "vpa")
        only(vpa, frozenset({"address"}))
        address = req_text(vpa, "address", 320, field="vpa.address")
        if not _VPA.fullmatch(address):
            raise RazorpayError.invalid("Invalid VPA. Please enter a valid Virtual Payment Address", "vpa.address")
        return FundAccountRequest(contact_id, account_type, vpa=address)
    if account_type == "bank_account":
        bank = body.get("bank_account")
        if not isinstance(bank, dict):
            raise RazorpayError.invalid(
                "The bank account field is required when account type is bank_account.", "bank_account"
            )
        only(bank, frozenset({"name", "ifsc", "account_number"}))
        holder = req_text(bank, "name", 120, field="bank_account.name")
        if len(holder) < 3 or not _NAME.fullmatch(holder):
            raise RazorpayError.invalid("The bank account name field is invalid.", "bank_account.name")
        ifsc = req_text(bank, "ifsc", 20, field="bank_account.ifsc")
        if len(ifsc) != 11:
            raise RazorpayError.invalid("The ifsc must be 11 characters.", "bank_account.ifsc")
        if not _IFSC.fullmatch(ifsc):
            raise RazorpayError.invalid("Invalid IFSC Code", "bank_account.ifsc")
        number = req_text(bank, "account_number", 40, field="bank_account.account_number")
        if not _ACCOUNT.fullmatch(number):
            raise RazorpayError.invalid("The account number format is invalid.", "bank_account.account_number")
        return FundAccountRequest(contact_id, account_type, holder=holder, ifsc=ifsc, account_number=number)
    raise RazorpayError.invalid("The selected account type is invalid.", "account_type")


@dataclass(frozen=True)
class PayoutRequest:
    fund_account_id: str
    amount: int
    mode: str
    purpose: str
    queue_if_low_balance: bool
    reference_id: str | None
    narration: str | None
    notes: dict[str, str]


def payout_request(body: Mapping[str, Any], ours: str) -> PayoutRequest:
    """The fields of a payout, each checked; the fund account and the mode's limits are the books' to check."""
    only(
        body,
        frozenset(
            {
                "account_number",
                "fund_account_id",
                "amount",
                "currency",
                "mode",
                "purpose",
                "queue_if_low_balance",
                "reference_id",
                "narration",
                "notes",
            }
        ),
    )
    account_number(body, ours)
    fund_account_id = req_text(body, "fund_account_id", 40)
    amount = body.get("amount")
    if amount is None:
        raise RazorpayError.invalid("The amount field is required.", "amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise RazorpayError.invalid("The amount must be an integer.", "amount")
    if amount < MIN_PAYOUT:
        raise RazorpayError.invalid("Minimum transaction amount allowed is Re. 1", "amount")
    if req_text(body, "currency", 3) != "INR":
        raise RazorpayError.invalid("The selected currency is invalid.", "currency")
    mode = req_text(body, "mode", 10)
    if mode not in MODES:
        raise RazorpayError.invalid("The selected mode is invalid.", "mode")
    purpose = req_text(body, "purpose", 40)
    if purpose not in PURPOSES:
        raise RazorpayError.invalid(f"Invalid purpose: {purpose}", "purpose")
    queue = body.get("queue_if_low_balance", False)
    if not isinstance(queue, bool):
        raise RazorpayError.invalid("The queue if low balance field must be true or false.", "queue_if_low_balance")
    narration = opt_text(body, "narration", 30)
    if narration is not None and not _NARRATION.fullmatch(narration):
        raise RazorpayError.invalid("The narration format is invalid.", "narration")
    return PayoutRequest(
        fund_account_id, amount, mode, purpose, queue, opt_text(body, "reference_id", 40), narration, notes(body)
    )


def count_skip(query: Mapping[str, str]) -> tuple[int, int]:
    out = []
    for name, default, high in (("count", PAGE_DEFAULT, PAGE_MAX), ("skip", 0, None)):
        raw = query.get(name)
        if raw is None:
            out.append(default)
            continue
        if not raw.isdigit():
            raise RazorpayError.invalid(f"The {name} must be an integer.", name)
        if high is not None and not 1 <= int(raw) <= high:
            raise RazorpayError.invalid(f"The {name} must be between 1 and {high}.", name)
        out.append(int(raw))
    return out[0], out[1]


def window(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """`from` and `to`, Unix seconds, both inclusive."""
    out: list[int | None] = []
    for name in ("from", "to"):
        raw = query.get(name)
        if raw is not None and not raw.isdigit():
            raise RazorpayError.invalid(f"The {name} must be an integer.", name)
        out.append(int(raw) if raw is not None else None)
    return out[0], out[1]


__all__ = [
    "CONTACT_TYPES",
    "IDEMPOTENCY_KEY",
    "MIN_PAYOUT",
    "PURPOSES",
    "ContactRequest",
    "FundAccountRequest",
    "PayoutRequest",
    "account_number",
    "contact_request",
    "count_skip",
    "fund_account_request",
    "notes",
    "only",
    "payout_request",
    "window",
]
