"""Money and the asset registry (docs/architecture.md §4).

Amounts are integers in the asset's minor unit with the asset code beside them. Nothing here accepts or
returns a float: decimal strings are parsed exactly, and splits use the largest-remainder method so the
parts always sum to the whole.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

INT64_MAX: Final = 2**63 - 1
INT64_MIN: Final = -(2**63)
BPS_WHOLE: Final = 10_000


class AssetKind(StrEnum):
    CRYPTO = "crypto"
    FIAT = "fiat"
    POINTS = "points"


@dataclass(frozen=True, slots=True)
class Asset:
    """An asset the platform can hold. `scale` is the number of decimal places of one minor unit."""

    code: str
    scale: int
    kind: AssetKind
    redeemable: bool
    name: str
    # How each payout provider names this asset (e.g. Stellar "USDC:<issuer>"); backends add their own.
    provider_codes: Mapping[str, str] = field(default_factory=dict)

    @property
    def unit(self) -> int:
        """Minor units in one whole unit."""
        return int(10**self.scale)


USDC_TESTNET_ISSUER: Final = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"

ASSETS: Final[Mapping[str, Asset]] = {
    a.code: a
    for a in (
        Asset(
            "XLM",
            7,
            AssetKind.CRYPTO,
            redeemable=True,
            name="Stellar Lumens",
            provider_codes={"stellar": "native"},
        ),
        Asset(
            "USDC",
            7,
            AssetKind.CRYPTO,
            redeemable=True,
            name="USD Coin",
            provider_codes={"stellar": f"USDC:{USDC_TESTNET_ISSUER}"},
        ),
        Asset("USD", 2, AssetKind.FIAT, redeemable=True, name="US Dollar", provider_codes={"stripe": "usd"}),
        Asset("INR", 2, AssetKind.FIAT, redeemable=True, name="Indian Rupee", provider_codes={"stripe": "inr"}),
        # Telegram Stars: whole stars only. Paid only as a Telegram gift of that star price (docs/adr/0009).
        Asset("XTR", 0, AssetKind.POINTS, redeemable=True, name="Telegram Stars", provider_codes={"telegram": "XTR"}),
        # TON in nanotons; USDT (Tether on TON, a jetton) in its 6-decimal units. The TON rail reads the jetton
        # master and our jetton wallet from its providers-file options, never from here.
        Asset("TON", 9, AssetKind.CRYPTO, redeemable=True, name="Toncoin", provider_codes={"ton": "native"}),
        Asset("USDT", 6, AssetKind.CRYPTO, redeemable=True, name="Tether USD", provider_codes={"ton": "jetton"}),
        # Season Points are a game currency: never claimable, never payable, never refundable in cash.
        Asset("SP", 0, AssetKind.POINTS, redeemable=False, name="Season Points"),
    )
}


class UnknownAssetError(ValueError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown asset {code!r}; known assets: {', '.join(sorted(ASSETS))}")
        self.code = code


def asset(code: str) -> Asset:
    try:
        return ASSETS[code]
    except KeyError:
        raise UnknownAssetError(code) from None


def _known_asset(code: str) -> str:
    asset(code)
    return code


AssetCode = Annotated[
    str,
    AfterValidator(_known_asset),
    Field(description="A registered asset code", json_schema_extra={"enum": sorted(ASSETS)}),
]
MinorUnits = Annotated[
    int,
    Field(strict=True, ge=0, le=INT64_MAX, description="Non-negative integer amount in the asset's minor unit"),
]
PositiveMinorUnits = Annotated[
    int,
    Field(strict=True, gt=0, le=INT64_MAX, description="Positive integer amount in the asset's minor unit"),
]
# An amount whose sign and size a use case judges (with a refusal code of its own), within what a BIGINT column holds.
SignedMinorUnits = Annotated[
    int,
    Field(strict=True, ge=INT64_MIN, le=INT64_MAX, description="Integer amount in the asset's minor unit (int64)"),
]
BasisPoints = Annotated[int, Field(strict=True, ge=0, le=BPS_WHOLE, description="0..10000 basis points")]


class Money(BaseModel):
    """An amount of one asset, in minor units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    asset: AssetCode
    amount: MinorUnits

    def __add__(self, other: Money) -> Money:
        self._same_asset(other)
        return Money(asset=self.asset, amount=self.amount + other.amount)

    def __sub__(self, other: Money) -> Money:
        self._same_asset(other)
        return Money(asset=self.asset, amount=self.amount - other.amount)

    def _same_asset(self, other: Money) -> None:
        if other.asset != self.asset:
            raise ValueError(f"cannot combine {self.asset} with {other.asset}")

    def to_decimal_string(self) -> str:
        return format_minor(self.amount, self.asset)


# fullmatch, not match: `$` would also accept a trailing newline ("12\n").
def _positive(money: Money) -> Money:
    if money.amount <= 0:
        raise ValueError(f"amount must be positive, got {money.amount} {money.asset}")
    return money


def _payable(money: Money) -> Money:
    _positive(money)
    if not asset(money.asset).redeemable:
        raise ValueError(f"{money.asset} is not redeemable: it can never be claimed, paid out or refunded in cash")
    return money


PositiveMoney = Annotated[Money, AfterValidator(_positive)]
# What can leave the platform: a positive amount of a redeemable asset (never Season Points).
PayableMoney = Annotated[Money, AfterValidator(_payable)]


_DECIMAL_RE: Final = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")


def parse_decimal(text: str, asset_code: str) -> int:
    """Parse a non-negative decimal string ("12.5") into minor units, exactly.

    More fractional digits than the asset's scale is an error, not a rounding.
    """
    a = asset(asset_code)
    if not _DECIMAL_RE.fullmatch(text):
        raise ValueError(f"{text!r} is not a plain non-negative decimal number")
    try:
        value = Decimal(text)
    except InvalidOperation as err:  # pragma: no cover - the regex already guards this
        raise ValueError(f"{text!r} is not a decimal number") from err
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > a.scale:
        raise ValueError(f"{text!r} has more than {a.scale} decimal places allowed for {a.code}")
    minor = int(value.scaleb(a.scale))
    if minor > INT64_MAX:
        raise ValueError(f"{text!r} {a.code} exceeds the int64 range of minor units")
    return minor


def format_minor(amount: int, asset_code: str) -> str:
    """Minor units back to a decimal string with exactly `scale` places."""
    a = asset(asset_code)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), a.unit)
    return f"{sign}{whole}.{frac:0{a.scale}d}" if a.scale else f"{sign}{whole}"


def apply_bps(amount: int, bps: int) -> int:
    """The floor of `amount * bps / 10000`; callers give the remainder to a named party."""
    if not 0 <= bps <= BPS_WHOLE:
        raise ValueError(f"basis points must be within 0..{BPS_WHOLE}, got {bps}")
    return amount * bps // BPS_WHOLE


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` into parts proportional to `weights` that sum to exactly `total`.

    Each part gets the floor of its quota; the leftover units go one each to the largest fractional
    remainders, ties broken by position (earlier first), so the result is deterministic.
    """
    if total < 0:
        raise ValueError(f"cannot split a negative total {total}")
    if not weights:
        raise ValueError("at least one positive weight is needed to split an amount")
    if min(weights) < 0:
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("at least one positive weight is needed to split an amount")
    parts: list[int] = []
    remainders: list[int] = []
    for w in weights:
        part, remainder = divmod(total * w, weight_sum)
        parts.append(part)
        remainders.append(remainder)
    leftover = total - sum(parts)
    if leftover:
        for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:leftover]:
            parts[i] += 1
    return parts


__all__ = [
    "ASSETS",
    "BPS_WHOLE",
    "INT64_MAX",
    "Asset",
    "AssetCode",
    "AssetKind",
    "BasisPoints",
    "MinorUnits",
    "Money",
    "PayableMoney",
    "PositiveMinorUnits",
    "PositiveMoney",
    "UnknownAssetError",
    "apply_bps",
    "asset",
    "format_minor",
    "largest_remainder",
    "parse_decimal",
]
