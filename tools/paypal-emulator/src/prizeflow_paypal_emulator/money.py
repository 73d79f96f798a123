"""PayPal's money: decimal strings with exactly the currency's decimals (docs: reference/currency-codes; HUF, JPY and
TWD have none), kept as `Decimal`, never floats. Admin calls (discrepancies) give amounts in minor units."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

# The currencies PayPal's REST APIs accept, and their decimals.
CURRENCIES: Final[Mapping[str, int]] = {
    "AUD": 2, "BRL": 2, "CAD": 2, "CNY": 2, "CZK": 2, "DKK": 2, "EUR": 2, "HKD": 2, "HUF": 0, "ILS": 2, "JPY": 0,
    "MYR": 2, "MXN": 2, "TWD": 0, "NZD": 2, "NOK": 2, "PHP": 2, "PLN": 2, "GBP": 2, "SGD": 2, "SEK": 2, "CHF": 2,
    "THB": 2, "USD": 2,
}  # fmt: skip
_VALUE: Final = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]+)?")


def scale(currency: str) -> int:
    return CURRENCIES.get(currency, 2)


def quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-scale(currency))


def parse_value(value: str, currency: str) -> Decimal | None:
    """A PayPal amount string with exactly the currency's decimals ("12.34" USD, "1200" JPY), or None."""
    if _VALUE.fullmatch(value) is None:
        return None
    places = len(value.partition(".")[2])
    return Decimal(value) if places == scale(currency) else None


def fmt(value: Decimal, currency: str) -> str:
    """The decimal string of `value` in `currency` (a negative one for a debit)."""
    return f"{(value + 0).quantize(quantum(currency)):f}"


def amount(value: Decimal, currency: str) -> dict[str, str]:
    """The Payouts API's money object."""
    return {"currency": currency, "value": fmt(value, currency)}


def money(value: Decimal, currency: str) -> dict[str, str]:
    """Transaction Search's money object."""
    return {"currency_code": currency, "value": fmt(value, currency)}


def units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-scale(currency))


def iso(at: float) -> str:
    """`2018-01-27T10:17:41Z`: the Payouts API's times."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(at: float) -> str:
    """`2018-01-27T10:17:41.123Z`: a webhook event's `create_time`."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reporting_time(at: float) -> str:
    """`2018-01-27T10:17:41+0000`: Transaction Search's times."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def balances_json(values: Mapping[str, Decimal]) -> dict[str, Any]:
    return {c: fmt(v, c) for c, v in sorted(values.items())}


__all__ = [
    "CURRENCIES",
    "amount",
    "balances_json",
    "fmt",
    "iso",
    "iso_ms",
    "money",
    "parse_value",
    "quantum",
    "reporting_time",
    "scale",
    "units",
]
