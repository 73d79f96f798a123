"""Decimal strings ↔ stroops, exactly: at most 7 decimal places, within int64, never a float."""

from __future__ import annotations

import re
from typing import Final

STROOPS_PER_UNIT: Final = 10_000_000
STELLAR_SCALE: Final = 7
INT64_MAX: Final = 2**63 - 1
# fullmatch, not match: `$` would also accept a trailing newline ("12\n").
_AMOUNT_RE: Final = re.compile(r"(0|[1-9][0-9]{0,18})(?:\.([0-9]{1,7}))?")


class AmountError(ValueError):
    """An amount that is not a plain decimal with ≤7 places within the int64 stroop range."""


def to_stroops(text: str, *, allow_zero: bool = False) -> int:
    """Parse "12.5" into 125000000 stroops. More than 7 decimals is an error, never a rounding."""
    if not isinstance(text, str):
        raise AmountError(f"an amount must be a decimal string, got {type(text).__name__}")
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        if re.fullmatch(r"(0|[1-9][0-9]*)\.[0-9]{8,}", text):
            raise AmountError(f"{text!r} has more than {STELLAR_SCALE} decimal places")
        raise AmountError(f"{text!r} is not a plain non-negative decimal number")
    whole, frac = match.group(1), match.group(2) or ""
    stroops = int(whole) * STROOPS_PER_UNIT + int(frac.ljust(STELLAR_SCALE, "0"))
    if stroops > INT64_MAX:
        raise AmountError(f"{text!r} exceeds the int64 stroop range (max {from_stroops(INT64_MAX)})")
    if stroops == 0 and not allow_zero:
        raise AmountError("the amount must be positive")
    return stroops


def from_stroops(stroops: int) -> str:
    """125000000 → "12.5000000" (always 7 places, the form Horizon and stellar-sdk print)."""
    if isinstance(stroops, bool) or not isinstance(stroops, int):
        raise AmountError(f"stroops must be an int, got {type(stroops).__name__}")
    if not 0 <= stroops <= INT64_MAX:
        raise AmountError(f"{stroops} is outside 0..int64 max")
    whole, frac = divmod(stroops, STROOPS_PER_UNIT)
    return f"{whole}.{frac:07d}"


def check_stroops(stroops: int) -> int:
    """A positive int64 stroop amount, or AmountError."""
    if isinstance(stroops, bool) or not isinstance(stroops, int) or not 0 < stroops <= INT64_MAX:
        raise AmountError(f"{stroops!r} is not a positive int64 stroop amount")
    return stroops


__all__ = ["INT64_MAX", "STROOPS_PER_UNIT", "AmountError", "check_stroops", "from_stroops", "to_stroops"]
