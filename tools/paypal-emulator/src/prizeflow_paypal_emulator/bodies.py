"""Request bodies and queries checked as PayPal documents them (payments.payouts-batch/v1 `create_payout_request`,
transaction-search/v1 list transactions). A refusal lists every problem found, each naming its field (`items[0].amount
.value`), in PayPal's VALIDATION_ERROR / INVALID_REQUEST; the issue wordings are the emulator's where PayPal's are not
documented."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from prizeflow_paypal_emulator.errors import PayPalError, detail
from prizeflow_paypal_emulator.money import CURRENCIES, parse_value, scale
from prizeflow_paypal_emulator.rules import RECIPIENT_TYPES

MAX_ITEMS: Final = 15_000  # docs: "up to 15,000 individual payouts in one API call"
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_PHONE: Final = re.compile(r"\+?[0-9]{7,15}")
_PAYER_ID: Final = re.compile(r"[A-Z0-9]{13}")
_HEADER_FIELDS: Final = ("sender_batch_id", "email_subject", "email_message", "recipient_type", "note")
_ITEM_FIELDS: Final = frozenset({"recipient_type", "amount", "note", "receiver", "sender_item_id"})
_TIME: Final = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)([.][0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:?[0-9]{2})"
)
REPORTING_MAX_DAYS: Final = 31
REPORTING_PAGE_MAX: Final = 500
REPORTING_PAGE_DEFAULT: Final = 100
BATCH_PAGE_MAX: Final = 1000


@dataclass(frozen=True)
class ItemRequest:
    recipient_type: str
    receiver: str
    value: Decimal
    currency: str
    sender_item_id: str | None
    note: str | None
    extra: dict[str, Any]


@dataclass(frozen=True)
class BatchRequest:
    sender_batch_id: str | None
    header: dict[str, Any]  # the sender_batch_header as sent (known fields)
    items: tuple[ItemRequest, ...]


def valid_receiver(recipient_type: str, receiver: str) -> bool:
    pattern = {"EMAIL": _EMAIL, "PHONE": _PHONE, "PAYPAL_ID": _PAYER_ID}[recipient_type]
    return len(receiver) <= 127 and pattern.fullmatch(receiver) is not None


def batch_request(body: Any) -> BatchRequest:
    """The create-payout body, or PayPalError VALIDATION_ERROR listing every problem."""
    if not isinstance(body, dict):
        raise PayPalError.malformed()
    problems: list[dict[str, Any]] = []
    header = body.get("sender_batch_header")
    if not isinstance(header, dict):
        problems.append(detail("sender_batch_header", "Required field is missing or not an object"))
        header = {}
    sender_batch_id = header.get("sender_batch_id")
    if sender_batch_id is not None and (not isinstance(sender_batch_id, str) or not 0 < len(sender_batch_id) <= 256):
        problems.append(detail("sender_batch_header.sender_batch_id", "Must be a string of 1 to 256 characters"))
    for name, limit in (("email_subject", 255), ("email_message", 1000), ("note", 1000)):
        value = header.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            problems.append(detail(f"sender_batch_header.{name}", f"Must be a string of at most {limit} characters"))
    default_type = header.get("recipient_type")
    if default_type is not None and default_type not in RECIPIENT_TYPES:
        problems.append(detail("sender_batch_header.recipient_type", "Must be EMAIL, PHONE or PAYPAL_ID"))
        default_type = None
    items = body.get("items")
    parsed: list[ItemRequest] = []
    if not isinstance(items, list) or not items:
        problems.append(detail("items", "Required field is missing or empty"))
    elif len(items) > MAX_ITEMS:
        problems.append(detail("items", f"A batch holds at most {MAX_ITEMS} items"))
    else:
        for n, item in enumerate(items):
            made = _item(f"items[{n}]", item, default_type or "EMAIL", problems)
            if made is not None:
                parsed.append(made)
    if problems:
        raise PayPalError.validation(problems)
    known = {k: header[k] for k in _HEADER_FIELDS if k in header}
    return BatchRequest(sender_batch_id, known, tuple(parsed))


def _item(  # noqa: PLR0912 - one check per field
    where: str, item: Any, default_type: str, problems: list[dict[str, Any]]
) -> ItemRequest | None:
    if not isinstance(item, dict):
        problems.append(detail(where, "Must be an object"))
        return None
    before = len(problems)
    recipient_type = item.get("recipient_type", default_type)
    if recipient_type not in RECIPIENT_TYPES:
        problems.append(detail(f"{where}.recipient_type", "Must be EMAIL, PHONE or PAYPAL_ID"))
    receiver = item.get("receiver")
    if not isinstance(receiver, str) or not receiver:
        problems.append(detail(f"{where}.receiver", "Required field is missing"))
    elif recipient_type in RECIPIENT_TYPES and not valid_receiver(recipient_type, receiver):
        problems.append(detail(f"{where}.receiver", "Receiver is invalid or does not match with type"))
    money_doc = item.get("amount")
    value: Decimal | None = None
    currency = None
    if not isinstance(money_doc, dict):
        problems.append(detail(f"{where}.amount", "Required field is missing or not an object"))
    else:
        currency, raw = money_doc.get("currency"), money_doc.get("value")
        if not isinstance(currency, str) or currency not in CURRENCIES:
            problems.append(detail(f"{where}.amount.currency", "Currency code is invalid or not supported"))
        elif not isinstance(raw, str):
            problems.append(detail(f"{where}.amount.value", "Required field is missing or not a string"))
        else:
            value = parse_value(raw, currency)
            if value is None:
                places = scale(currency)
                problems.append(
                    detail(
                        f"{where}.amount.value",
                        f"Must be a decimal string with {places} decimal places for {currency}"
                        if places
                        else f"Must be a whole number for {currency} (it has no decimals)",
                    )
                )
            elif value <= 0:
                problems.append(detail(f"{where}.amount.value", "Must be greater than zero"))
    sender_item_id = item.get("sender_item_id")
    if sender_item_id is not None and (not isinstance(sender_item_id, str) or not 0 < len(sender_item_id) <= 63):
        problems.append(detail(f"{where}.sender_item_id", "Must be a string of 1 to 63 characters"))
    note = item.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 4000):
        problems.append(detail(f"{where}.note", "Must be a string of at most 4000 characters"))
    if len(problems) > before or value is None or not isinstance(currency, str) or not isinstance(receiver, str):
        return None
    extra = {k: v for k, v in item.items() if k not in _ITEM_FIELDS}
    return ItemRequest(str(recipient_type), receiver, value, currency, sender_item_id, note, extra)


def page(query: Mapping[str, str], name: str, default: int, maximum: int | None, *, payouts: bool = False) -> int:
    """A paging parameter; refused as Transaction Search does (INVALID_REQUEST) or, `payouts`, as the Payouts API
    does (VALIDATION_ERROR)."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
        bound = f"between 1 and {maximum}" if maximum is not None else "at least 1"
        problem = [detail(name, f"Must be an integer {bound}", location="query", value=raw)]
        raise PayPalError.validation(problem) if payouts else PayPalError.invalid_request(problem)
    return int(raw)


def reporting_time(query: Mapping[str, str], name: str) -> float:
    raw = query.get(name)
    if raw is None or raw == "":
        raise PayPalError.invalid_request([detail(name, "Required parameter is missing", location="query")])
    if _TIME.fullmatch(raw) is None:
        raise PayPalError.invalid_request(
            [detail(name, "Must be an Internet date and time with seconds", location="query", value=raw)]
        )
    normalized = raw.replace("z", "Z").replace("t", "T")
    if re.search(r"[+-][0-9]{4}$", normalized):
        normalized = f"{normalized[:-2]}:{normalized[-2:]}"
    return datetime.fromisoformat(normalized.replace("Z", "+00:00")).timestamp()


def reporting_window(query: Mapping[str, str]) -> tuple[float, float]:
    """`start_date` and `end_date`, at most 31 days apart (PayPal: "The maximum supported range is 31 days")."""
    start, end = reporting_time(query, "start_date"), reporting_time(query, "end_date")
    if end < start:
        raise PayPalError.invalid_request(
            [detail("end_date", "End date must be after start date", location="query", value=query["end_date"])]
        )
    if end - start > REPORTING_MAX_DAYS * 86_400:
        raise PayPalError.invalid_request(
            [detail("end_date", "Date range is greater than 31 days", location="query", value=query["end_date"])]
        )
    return start, end


__all__ = [
    "BATCH_PAGE_MAX",
    "MAX_ITEMS",
    "REPORTING_MAX_DAYS",
    "REPORTING_PAGE_DEFAULT",
    "REPORTING_PAGE_MAX",
    "BatchRequest",
    "ItemRequest",
    "batch_request",
    "page",
    "reporting_time",
    "reporting_window",
    "valid_receiver",
]
