"""Which RazorpayX mode pays a payout: one pure decision over the operator's per-mode limits (fail closed).

A VPA is paid by UPI, and only up to the UPI limit (no other mode reaches a VPA). A bank account is paid by the
first of IMPS, then NEFT, whose limit covers the amount: small amounts go instantly, larger ones by NEFT. A mode
the operator left out of `limits` is never used; an amount no configured mode covers is refused, never sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from prizeflow_contracts.upi import UpiAddressKind
from prizeflow_payouts.adapters.upi.options import MIN_AMOUNT, Mode

# The modes that reach each kind of destination, in the order they are preferred.
MODES_FOR: Final[Mapping[UpiAddressKind, tuple[Mode, ...]]] = {
    UpiAddressKind.VPA: (Mode.UPI,),
    UpiAddressKind.BANK_ACCOUNT: (Mode.IMPS, Mode.NEFT),
}


def choose_mode(kind: UpiAddressKind, amount: int, limits: Mapping[Mode, int]) -> Mode | None:
    """The mode paying `amount` paise to a destination of `kind`; None when no configured mode may."""
    if amount < MIN_AMOUNT:
        return None
    for mode in MODES_FOR[kind]:
        limit = limits.get(mode)
        if limit is not None and amount <= limit:
            return mode
    return None


def ceiling(kind: UpiAddressKind, limits: Mapping[Mode, int]) -> int | None:
    """The largest amount any configured mode pays to `kind` (None: no mode configured for it)."""
    found = [limits[m] for m in MODES_FOR[kind] if m in limits]
    return max(found) if found else None


__all__ = ["MODES_FOR", "ceiling", "choose_mode"]
