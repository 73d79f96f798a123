"""The address of a `upi` destination (prizeflow_contracts.upi), read strictly. A leaf: `providers` validates a
`upi` destination with it, and imports nothing else of the rail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

# NPCI: a VPA is `<username>@<psp handle>`; the username letters, digits, `.`, `-`, `_` (neither first nor last a
# separator), the handle letters and digits. At most 100 characters in all.
VPA_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?@[a-z][a-z0-9]{1,31}")
MAX_VPA: Final = 100
# RBI: 4 letters (the bank), a 0 (reserved), 6 letters or digits (the branch).
IFSC_RE: Final = re.compile(r"[A-Z]{4}0[A-Z0-9]{6}")
# Indian bank account numbers are 9 to 18 digits.
ACCOUNT_NUMBER_RE: Final = re.compile(r"[0-9]{9,18}")
BANK_SEPARATOR: Final = "/"


class UpiAddressKind(StrEnum):
    VPA = "vpa"
    BANK_ACCOUNT = "bank_account"


@dataclass(frozen=True, slots=True)
class UpiAddress:
    """A `upi` destination, read: a VPA (lower case), or a bank account (IFSC upper case, account digits)."""

    kind: UpiAddressKind
    vpa: str | None = None
    ifsc: str | None = None
    account_number: str | None = None

    @property
    def spelling(self) -> str:
        """The one spelling of this destination (a VPA, or `IFSC/account`): as RazorpayX's fund account reads."""
        if self.kind is UpiAddressKind.VPA:
            return str(self.vpa)
        return f"{self.ifsc}{BANK_SEPARATOR}{self.account_number}"


def parse_upi_address(address: str) -> UpiAddress:
    """The address of a `upi` destination, strictly: `handle@psp` or `IFSC/account number`. Raises ValueError
    saying which rule it breaks (never echoing the address: it is personal data)."""
    if address != address.strip() or any(c.isspace() for c in address):
        raise ValueError("a upi destination has no spaces")
    if "@" in address:
        vpa = address.lower()
        if len(vpa) > MAX_VPA or not VPA_RE.fullmatch(vpa):
            raise ValueError("a VPA is handle@psp: letters, digits, '.', '-', '_' before the @, a PSP handle after it")
        return UpiAddress(UpiAddressKind.VPA, vpa=vpa)
    ifsc, sep, number = address.partition(BANK_SEPARATOR)
    if not sep:
        raise ValueError("a upi destination is a VPA (handle@psp) or a bank account (IFSC/account number)")
    if not IFSC_RE.fullmatch(ifsc.upper()):
        raise ValueError("an IFSC is 11 characters: 4 letters, a 0, then 6 letters or digits")
    if not ACCOUNT_NUMBER_RE.fullmatch(number):
        raise ValueError("a bank account number is 9 to 18 digits")
    return UpiAddress(UpiAddressKind.BANK_ACCOUNT, ifsc=ifsc.upper(), account_number=number)


__all__ = ["ACCOUNT_NUMBER_RE", "IFSC_RE", "MAX_VPA", "VPA_RE", "UpiAddress", "UpiAddressKind", "parse_upi_address"]
