"""TON addresses: strict parsing of the raw (`0:<64 hex>`) and user-friendly (48 base64 characters, bounceable
or not, url-safe or not) forms, and one canonical spelling (raw) for comparisons, storage and policy.

pytoniq-core's `Address` accepts too much (any length of base64, any workchain), so the checks are here.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final

from pytoniq_core.boc.address import Address

_RAW_RE: Final = re.compile(r"(0|-1):[0-9a-fA-F]{64}")
_FRIENDLY_RE: Final = re.compile(r"[A-Za-z0-9+/_-]{48}")
_BOUNCEABLE, _NON_BOUNCEABLE, _TEST = 0x11, 0x51, 0x80
WORKCHAINS: Final = frozenset({0, -1})


class InvalidTonAddressError(ValueError):
    """Not a TON address this platform pays to; the message never echoes more than the form."""


def _crc16(data: bytes) -> bytes:
    """CRC-16/XMODEM, the checksum of user-friendly addresses."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class TonAddress:
    """A parsed address: workchain, 32-byte account id, and the flags its user-friendly form carried."""

    workchain: int
    account: bytes
    bounceable: bool | None  # None: given in raw form (no flag)
    test_only: bool = False

    @property
    def raw(self) -> str:
        """The canonical spelling: `<wc>:<64 lowercase hex>`."""
        return f"{self.workchain}:{self.account.hex()}"

    def friendly(self, *, bounceable: bool, test_only: bool = False) -> str:
        tag = (_BOUNCEABLE if bounceable else _NON_BOUNCEABLE) | (_TEST if test_only else 0)
        body = bytes([tag]) + self.workchain.to_bytes(1, "big", signed=True) + self.account
        return base64.urlsafe_b64encode(body + _crc16(body)).decode()

    def to_pytoniq(self) -> Address:
        return Address((self.workchain, self.account))

    @classmethod
    def from_pytoniq(cls, address: Address) -> TonAddress:
        return cls(workchain=int(address.wc), account=bytes(address.hash_part), bounceable=None)


def parse_address(text: str, *, workchains: frozenset[int] = frozenset({0})) -> TonAddress:
    """Parse a raw or user-friendly address; raise InvalidTonAddressError (checksum, length, flags, workchain)."""
    value = text.strip()
    if _RAW_RE.fullmatch(value):
        wc, hex_part = value.split(":")
        parsed = TonAddress(workchain=int(wc), account=bytes.fromhex(hex_part), bounceable=None)
    elif _FRIENDLY_RE.fullmatch(value):
        try:
            decoded = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_"))
        except (binascii.Error, ValueError) as err:
            raise InvalidTonAddressError("a user-friendly TON address must be base64") from err
        if len(decoded) != 36 or decoded[34:] != _crc16(decoded[:34]):
            raise InvalidTonAddressError("the TON address checksum does not match")
        tag = decoded[0]
        test_only = bool(tag & _TEST)
        tag &= ~_TEST
        if tag not in (_BOUNCEABLE, _NON_BOUNCEABLE):
            raise InvalidTonAddressError("unknown TON address flags")
        parsed = TonAddress(
            workchain=int.from_bytes(decoded[1:2], "big", signed=True),
            account=decoded[2:34],
            bounceable=tag == _BOUNCEABLE,
            test_only=test_only,
        )
    else:
        raise InvalidTonAddressError("not a TON address (raw `0:<hex>` or 48-character user-friendly form)")
    if parsed.workchain not in workchains:
        raise InvalidTonAddressError(f"workchain {parsed.workchain} is not accepted here")
    return parsed


def canonical(text: str) -> str:
    """The raw spelling of any accepted form (what policies and stores compare)."""
    return parse_address(text).raw


__all__ = ["WORKCHAINS", "InvalidTonAddressError", "TonAddress", "canonical", "parse_address"]
