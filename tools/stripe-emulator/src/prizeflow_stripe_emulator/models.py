"""Object ids, statuses and their transition tables, parameter checks: the vocabulary of the store. Pure."""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from prizeflow_stripe_emulator.errors import StripeError

_ALPHABET = string.ascii_letters + string.digits
_CURRENCY = re.compile(r"^[a-z]{3}$")
MAX_AMOUNT = 99_999_999_999  # Stripe's amount cap (an 8-digit major-unit amount with cents, plus headroom)


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


class PayoutStatus(StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"


# A paid payout can still fail: the bank returns it days later (Stripe sends payout.failed after payout.paid).
PAYOUT_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PENDING: frozenset(
        {PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELED}
    ),
    PayoutStatus.IN_TRANSIT: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.PAID: frozenset({PayoutStatus.FAILED}),
    PayoutStatus.FAILED: frozenset(),
    PayoutStatus.CANCELED: frozenset(),
}

PAYOUT_FAILURE_MESSAGES: dict[str, str] = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on either the type, or the number, of payouts "
    "allowed.",
    "could_not_process": "The bank could not process this payout.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "invalid_account_number": "The routing number seems correct, but the account number is invalid.",
    "no_account": "The bank account details on file are probably incorrect.",
    "declined": "The bank has declined this transfer.",
}


class SessionStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


SESSION_TRANSITIONS: dict[SessionStatus, frozenset[SessionStatus]] = {
    SessionStatus.OPEN: frozenset({SessionStatus.COMPLETE, SessionStatus.EXPIRED}),
    SessionStatus.COMPLETE: frozenset(),
    SessionStatus.EXPIRED: frozenset(),
}


class DisputeStatus(StrEnum):
    NEEDS_RESPONSE = "needs_response"
    WON = "won"
    LOST = "lost"


DISPUTE_TRANSITIONS: dict[DisputeStatus, frozenset[DisputeStatus]] = {
    DisputeStatus.NEEDS_RESPONSE: frozenset({DisputeStatus.WON, DisputeStatus.LOST}),
    DisputeStatus.WON: frozenset(),
    DisputeStatus.LOST: frozenset(),
}


@dataclass(frozen=True)
class Ctx:
    """Who asked: the connected account (`Stripe-Account`), the request id and idempotency key events record."""

    account: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None


ADMIN = Ctx()


@dataclass
class Params:
    """A request's parameters with Stripe's checks: unknown names refused, types and ranges enforced."""

    raw: dict[str, Any]
    allowed: frozenset[str]
    path: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.raw:
            if name not in self.allowed and not (name == "expand" and not self.path):
                raise StripeError.unknown_param(self._name(name))

    def _name(self, name: str) -> str:
        if not self.path:
            return name
        return self.path[0] + "".join(f"[{part}]" for part in (*self.path[1:], name))

    def has(self, name: str) -> bool:
        return name in self.raw

    def text(self, name: str, *, required: bool = False, max_len: int = 5000) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise StripeError.missing_param(self._name(name))
            return None
        if not isinstance(value, str) or len(value) > max_len:
            raise StripeError.invalid(f"Invalid string: {self._name(name)}", param=self._name(name))
        return value

    def req_text(self, name: str, *, max_len: int = 5000) -> str:
        value = self.text(name, required=True, max_len=max_len)
        assert value is not None
        return value

    def integer(self, name: str, *, required: bool = False, minimum: int = 0) -> int | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise StripeError.missing_param(self._name(name))
            return None
        if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,15}", value):
            raise StripeError.invalid(f"Invalid integer: {value}", param=self._name(name))
        number = int(value)
        if number < minimum:
            raise StripeError.invalid(f"This value must be greater than or equal to {minimum}.", param=self._name(name))
        if number > MAX_AMOUNT:
            raise StripeError.invalid("Amount must be no more than 999,999,999.99", param=self._name(name))
        return number

    def req_integer(self, name: str, *, minimum: int = 0) -> int:
        value = self.integer(name, required=True, minimum=minimum)
        assert value is not None
        return value

    def flag(self, name: str) -> bool | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if value not in ("true", "false"):
            raise StripeError.invalid(f"Invalid boolean: {value}", param=self._name(name))
        return bool(value == "true")

    def currency(self, name: str = "currency") -> str:
        value = self.req_text(name).lower()
        if not _CURRENCY.match(value):
            raise StripeError.invalid(f"Invalid currency: {value}.", param=self._name(name))
        return value

    def nested(self, name: str, allowed: frozenset[str]) -> Params | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise StripeError.invalid(f"Invalid object: {self._name(name)}", param=self._name(name))
        return Params(value, allowed, path=(*self.path, name))

    def objects(self, name: str, allowed: frozenset[str]) -> list[Params]:
        """A list of hashes (`line_items[0][...]`), each checked against `allowed`."""
        items = self.array(name) or []
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise StripeError.invalid(f"Invalid object: {self._name(name)}[{i}]", param=f"{self._name(name)}[{i}]")
            out.append(Params(item, allowed, path=(*self.path, name, str(i))))
        return out

    def array(self, name: str) -> list[Any] | None:
        value = self.raw.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, list):
            raise StripeError.invalid(f"Invalid array: {self._name(name)}", param=self._name(name))
        return value

    def metadata(self, name: str = "metadata") -> dict[str, str]:
        value = self.raw.get(name)
        if value is None or value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise StripeError.invalid("Invalid metadata: a hash of strings is expected", param=self._name(name))
        if len(value) > 50:
            raise StripeError.invalid("Metadata can have at most 50 keys.", param=self._name(name))
        for key, item in value.items():
            if len(key) > 40:
                raise StripeError.invalid(
                    "Metadata keys can be at most 40 characters long.", param=f"{self._name(name)}[{key}]"
                )
            if len(item) > 500:
                raise StripeError.invalid(
                    "Metadata values can be at most 500 characters long.", param=f"{self._name(name)}[{key}]"
                )
        return {k: v for k, v in value.items() if v != ""}


_RANGE_OPS = ("gt", "gte", "lt", "lte")


def created_filter(raw: dict[str, Any], name: str = "created") -> Callable[[dict[str, Any]], bool]:
    """Pops Stripe's `created` filter from `raw` (an exact timestamp, or a hash of `gt`/`gte`/`lt`/`lte`) and
    returns the predicate it means on an object's `created`."""
    value = raw.pop(name, None)
    if value is None or value == "":
        return lambda _obj: True
    if isinstance(value, str):
        exact = Params({name: value}, frozenset({name})).req_integer(name)
        return lambda obj: int(obj[name]) == exact
    if not isinstance(value, dict):
        raise StripeError.invalid(f"Invalid {name}: an integer or a hash of gt/gte/lt/lte", param=name)
    p = Params(value, frozenset(_RANGE_OPS), path=(name,))
    bounds = {op: p.integer(op) for op in _RANGE_OPS}

    def keep(obj: dict[str, Any]) -> bool:
        at = int(obj[name])
        return (
            (bounds["gt"] is None or at > bounds["gt"])
            and (bounds["gte"] is None or at >= bounds["gte"])
            and (bounds["lt"] is None or at < bounds["lt"])
            and (bounds["lte"] is None or at <= bounds["lte"])
        )

    return keep


def paginate(items: list[dict[str, Any]], raw: dict[str, Any], url: str) -> dict[str, Any]:
    """A Stripe list page over `items` (newest first): `limit` (1..100, default 10), `starting_after`,
    `ending_before`."""
    p = Params(raw, frozenset(raw))
    limit = p.integer("limit", minimum=1) or 10
    if limit > 100:
        raise StripeError.invalid("This value must be less than or equal to 100.", param="limit")
    ids = [item["id"] for item in items]
    after, before = p.text("starting_after"), p.text("ending_before")
    if after is not None:
        if after not in ids:
            raise StripeError.no_such("object", after, param="starting_after")
        start = ids.index(after) + 1
        page = items[start : start + limit]
        has_more = start + limit < len(items)
    elif before is not None:
        if before not in ids:
            raise StripeError.no_such("object", before, param="ending_before")
        end = ids.index(before)
        page = items[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


__all__ = [
    "ADMIN",
    "DISPUTE_TRANSITIONS",
    "PAYOUT_FAILURE_MESSAGES",
    "PAYOUT_TRANSITIONS",
    "SESSION_TRANSITIONS",
    "Ctx",
    "DisputeStatus",
    "Params",
    "PayoutStatus",
    "SessionStatus",
    "created_filter",
    "new_id",
    "paginate",
]
