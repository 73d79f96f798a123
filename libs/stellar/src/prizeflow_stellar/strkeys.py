"""StrKey and idempotency-key validation: what payouts checks before anything is built."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final

from stellar_sdk import StrKey

from prizeflow_contracts.ids import IDEMPOTENCY_KEY_PATTERN

_IDEMPOTENCY_RE: Final = re.compile(IDEMPOTENCY_KEY_PATTERN.removeprefix("^").removesuffix("$"))


class AddressKind(StrEnum):
    ACCOUNT = "account"  # G...
    MUXED = "muxed"  # M...
    CONTRACT = "contract"  # C...


class InvalidAddressError(ValueError):
    """Not a valid StrKey of an accepted kind (checksum and version byte are verified)."""


def address_kind(address: str) -> AddressKind | None:
    """The kind of a valid StrKey (checksum verified), or None."""
    if not isinstance(address, str) or len(address) not in (56, 69):
        return None
    if address.startswith("G") and StrKey.is_valid_ed25519_public_key(address):
        return AddressKind.ACCOUNT
    if address.startswith("M") and StrKey.is_valid_med25519_public_key(address):
        return AddressKind.MUXED
    if address.startswith("C") and StrKey.is_valid_contract(address):
        return AddressKind.CONTRACT
    return None


def is_account_id(address: str) -> bool:
    return address_kind(address) is AddressKind.ACCOUNT


def is_muxed_account(address: str) -> bool:
    return address_kind(address) is AddressKind.MUXED


def is_contract_id(address: str) -> bool:
    return address_kind(address) is AddressKind.CONTRACT


def validate_destination(address: str, *, allow_muxed: bool = True, allow_contract: bool = False) -> AddressKind:
    """A payout destination: a G account, an M muxed account if allowed, a C contract if allowed."""
    kind = address_kind(address)
    allowed = {AddressKind.ACCOUNT}
    if allow_muxed:
        allowed.add(AddressKind.MUXED)
    if allow_contract:
        allowed.add(AddressKind.CONTRACT)
    if kind is None:
        raise InvalidAddressError(f"{address!r} is not a valid Stellar address (bad prefix, length or checksum)")
    if kind not in allowed:
        raise InvalidAddressError(f"{address!r} is a {kind.value} address, which is not accepted here")
    return kind


def is_valid_idempotency_key(key: str) -> bool:
    return isinstance(key, str) and _IDEMPOTENCY_RE.fullmatch(key) is not None


def validate_idempotency_key(key: str) -> str:
    if not is_valid_idempotency_key(key):
        raise ValueError("an idempotency key is 1-255 characters of [A-Za-z0-9:_-]")
    return key


__all__ = [
    "AddressKind",
    "InvalidAddressError",
    "address_kind",
    "is_account_id",
    "is_contract_id",
    "is_muxed_account",
    "is_valid_idempotency_key",
    "validate_destination",
    "validate_idempotency_key",
]
