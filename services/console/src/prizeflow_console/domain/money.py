"""Amounts as people read and type them, from and to integer minor units: string arithmetic, never a float."""

from __future__ import annotations

import re
from typing import Final

from prizeflow_contracts.money import ASSETS, INT64_MAX, asset

# ASCII digits only (`\d` also matches other scripts' digits, which `int()` reads); a comma only ever groups
# thousands: `1,50` is refused, never read as 150 (nor as 1.50: a decimal comma is not guessed at).
_AMOUNT: Final = re.compile(
    r"(?P<whole>[0-9]{1,19}|[0-9]{1,3}(?:,[0-9]{3}){1,6})(?:\.(?P<frac>[0-9]{1,18}))?", re.ASCII
)


class AmountError(ValueError):
    """An amount a person typed that is not one the asset can hold; the message says why."""


def format_minor(amount: int, code: str) -> str:
    """`1250, "USD"` → `12.50 USD`; an unknown asset shows its minor units as they are."""
    spec = ASSETS.get(code)
    if spec is None or spec.scale == 0:
        return f"{amount:,} {code}"
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), spec.unit)
    return f"{sign}{whole:,}.{frac:0{spec.scale}d} {code}"


def parse_major(text: str, code: str) -> int:
    """`"12.5", "USD"` → 1250; `"1,000.50"` → 100050. Refuses more decimals than the asset has, signs, exponents,
    zero, a comma anywhere but between groups of thousands, and digits other than 0-9."""
    spec = asset(code)
    match = _AMOUNT.fullmatch(text.strip())
    if match is None:
        raise AmountError(
            "enter an amount like 12.50 (digits 0-9, a point before the decimals; a comma only between thousands)"
        )
    frac = match["frac"] or ""
    if len(frac.rstrip("0")) > spec.scale:
        raise AmountError(f"{code} has {spec.scale} decimal places")
    minor = int(match["whole"].replace(",", "")) * spec.unit + int((frac + "0" * spec.scale)[: spec.scale] or "0")
    if minor <= 0:
        raise AmountError("the amount must be more than zero")
    if minor > INT64_MAX:
        raise AmountError("the amount is too large")
    return minor


def redeemable(code: str) -> bool:
    spec = ASSETS.get(code)
    return spec is not None and spec.redeemable


def mask_destination(destination: str | None) -> str:
    """Enough of a payout destination to recognise it, never all of it: `GABC…WXYZ`, `a…@example.com`."""
    if not destination:
        return ""
    if "@" in destination:
        local, _, domain = destination.partition("@")
        return f"{local[:1]}…@{domain}"
    if len(destination) <= 8:
        return destination[:2] + "…"
    return f"{destination[:4]}…{destination[-4:]}"


__all__ = ["AmountError", "format_minor", "mask_destination", "parse_major", "redeemable"]
