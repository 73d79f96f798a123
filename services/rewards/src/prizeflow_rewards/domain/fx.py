"""Currency conversion at claim time (pure): the pairs the operator enables, a quote's terms under the rounding rule
of docs/adr/0015-currency-conversion.md, whether a quote still holds, and the ledger legs of a conversion.

The rule, in integer minor units (S the claimed amount in the source asset, `bps` the pair's spread, `rate` the
provider's mid rate, target units per one source unit, `k` = 10^(target scale - source scale)):

    spread = ceil(S * bps / 10_000)      source minor units, to revenue (never less than the stated spread)
    net    = S - spread                  source minor units, sold to the FX desk (fx account, source asset)
    target = floor(net * rate * k)       target minor units paid (never more than the net at the mid rate)

What `floor` leaves (less than one target minor unit) stays in the FX position: the desk's, never the player's and
never revenue's. A conversion's legs are booked when its payout is paid; a void moves nothing but the reservation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext
from enum import StrEnum
from typing import Final

from prizeflow_contracts.money import ASSETS, BPS_WHOLE, INT64_MAX
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind

FX_DESK: Final = "fx"
SPREAD_REVENUE: Final = "fx_spread"
# The provider's code for an asset it does not list: a stablecoin priced as the currency it is pegged to (ADR 0015).
RATE_CODE: Final[Mapping[str, str]] = {"USDC": "USD", "USDT": "USD"}
MAX_RATE_PLACES: Final = 12  # more than any provider publishes; a rate past it is refused, never rounded


def fx_account(asset: str) -> AccountRef:
    """The FX desk's position in one asset: long what players sold it, short what it paid out."""
    return AccountRef(AccountKind.FX_POSITION, FX_DESK, asset)


def spread_revenue(asset: str) -> AccountRef:
    return accounts.platform_revenue(SPREAD_REVENUE, asset)


def rate_code(asset: str) -> str:
    return RATE_CODE.get(asset, asset)


@dataclass(frozen=True, slots=True, order=True)
class Pair:
    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}/{self.target}"

    @classmethod
    def parse(cls, text: str) -> Pair:
        source, sep, target = text.partition("/")
        if not sep or source not in ASSETS or target not in ASSETS or source == target:
            raise ValueError(f"an FX pair is SOURCE/TARGET of two distinct known assets, got {text!r}")
        return cls(source, target)


class QuoteRefusal(StrEnum):
    """Why a claim's quote does not hold (problem details `code`; the field is `quote_id`)."""

    QUOTE_UNKNOWN = "quote_unknown"
    QUOTE_EXPIRED = "quote_expired"
    QUOTE_MOVED = "quote_moved"
    QUOTE_USED = "quote_used"
    QUOTE_MISMATCH = "quote_mismatch"


class ConversionOutOfRangeError(ValueError):
    """A conversion paying more than an amount holds (int64 minor units: the ledger's, a payout's, `fx_quotes`')."""


@dataclass(frozen=True, slots=True)
class Terms:
    """A conversion of `source_amount` at `rate` less `spread` (see the module's rule)."""

    pair: Pair
    source_amount: int
    rate: Decimal
    spread_bps: int
    spread: int
    net: int
    target_amount: int


def convert(pair: Pair, source_amount: int, rate: Decimal, spread_bps: int) -> Terms:
    """The terms of converting `source_amount` minor units of `pair.source` at `rate` with `spread_bps`. ValueError
    for a conversion that pays nothing or inputs out of range (a quote is then refused)."""
    if source_amount <= 0:
        raise ValueError("the amount to convert must be positive")
    if not 0 <= spread_bps < BPS_WHOLE:
        raise ValueError("the spread is 0..9999 basis points")
    if not rate.is_finite() or rate <= 0 or -rate.as_tuple().exponent > MAX_RATE_PLACES:  # type: ignore[operator]
        raise ValueError("the rate must be a positive decimal of at most 12 places")
    spread = -(-source_amount * spread_bps // BPS_WHOLE)
    net = source_amount - spread
    shift = ASSETS[pair.target].scale - ASSETS[pair.source].scale
    with localcontext() as ctx:
        ctx.prec = 60  # exact: int64 x a 12-place rate has far fewer digits
        exact = Decimal(net) * rate.scaleb(shift)
        target = int(exact.to_integral_value(rounding=ROUND_FLOOR))
    if target <= 0:
        raise ValueError(f"{source_amount} {pair.source} converts to nothing in {pair.target}")
    if target > INT64_MAX:
        raise ConversionOutOfRangeError(
            f"{source_amount} {pair.source} converts to more than an amount of {pair.target}"
        )
    return Terms(pair, source_amount, rate, spread_bps, spread, net, target)


@dataclass(frozen=True, slots=True)
class Quote:
    """A conversion offered to one player until `expires_at`; `claim_id` once a claim has locked it (once)."""

    id: str
    player_id: str
    terms: Terms
    rate_timestamp: datetime  # when the provider published the rate
    created_at: datetime
    expires_at: datetime
    claim_id: str | None = None

    def view(self) -> dict[str, object]:
        t = self.terms
        return {
            "quote_id": self.id,
            "player_id": self.player_id,
            "source_asset": t.pair.source,
            "source_amount": t.source_amount,
            "target_asset": t.pair.target,
            "target_amount": t.target_amount,
            "rate": format(t.rate, "f"),
            "spread_bps": t.spread_bps,
            "spread_amount": t.spread,
            "net_amount": t.net,
            "rate_timestamp": self.rate_timestamp.isoformat(),
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "claim_id": self.claim_id,
        }


def quote_id_for(player_id: str, pair: Pair, source_amount: int, rate_timestamp: datetime, nonce: str) -> str:
    digest = hashlib.sha256(f"{player_id}|{pair}|{source_amount}|{rate_timestamp.isoformat()}|{nonce}".encode())
    return "fxq-" + digest.hexdigest()[:32]


def stale(rate_timestamp: datetime, now: datetime, max_age_s: int) -> bool:
    return now - rate_timestamp > timedelta(seconds=max_age_s)


def moved_bps(quoted: Decimal, market: Decimal) -> Decimal:
    """How far the market moved from the quoted rate, in basis points of the quoted rate (absolute)."""
    return abs(market - quoted) * BPS_WHOLE / quoted


def check(  # noqa: PLR0911 - one quote, the claim it backs, and one return per refusal
    quote: Quote | None,
    *,
    claim_id: str,
    player_id: str,
    asset: str,
    amount: int,
    market: Decimal | None,
    max_move_bps: int,
    now: datetime,
) -> QuoteRefusal | None:
    """Whether a claim may lock `quote`: the player's, for this asset and amount, not locked by another claim, not
    expired, and the market (read just before the batch) within `max_move_bps` of the quoted rate. Fail closed: no
    market rate is a moved quote."""
    if quote is None or quote.player_id != player_id:
        return QuoteRefusal.QUOTE_UNKNOWN
    if quote.claim_id is not None and quote.claim_id != claim_id:
        return QuoteRefusal.QUOTE_USED
    if (quote.terms.pair.source, quote.terms.source_amount) != (asset, amount):
        return QuoteRefusal.QUOTE_MISMATCH
    if quote.claim_id == claim_id:
        return None  # the same claim again (its idempotent repeat): already locked by it
    if now >= quote.expires_at:
        return QuoteRefusal.QUOTE_EXPIRED
    if market is None or moved_bps(quote.terms.rate, market) > max_move_bps:
        return QuoteRefusal.QUOTE_MOVED
    return None


@dataclass(frozen=True, slots=True)
class Conversion:
    """What a claim locked of its quote: what its payout pays (`target`) for what its wallet gives (`source`)."""

    quote_id: str
    source_asset: str
    target_asset: str
    target_amount: int
    spread: int
    rate: Decimal

    @classmethod
    def of(cls, quote: Quote) -> Conversion:
        t = quote.terms
        return cls(quote.id, t.pair.source, t.pair.target, t.target_amount, t.spread, t.rate)


def paid_legs(
    claim_id: str,
    source_amount: int,
    conversion: Conversion,
    provider: str,
    *,
    correlation_id: str | None,
    clearing: AccountRef,
) -> list[Transfer]:
    """A converted claim paid: the source leg out of the payout clearing account its reservation credited
    (`clearing`; net to the FX desk, the spread to revenue), the target leg from the FX desk to the rail. Its
    reservation is posted beside these."""
    c = conversion
    net = source_amount - c.spread
    legs = [
        Transfer.of(
            clearing,
            fx_account(c.source_asset),
            net,
            TransferKind.FX_SOURCE,
            claim_id,
            correlation_id=correlation_id,
        )
    ]
    if c.spread:
        legs.append(
            Transfer.of(
                clearing,
                spread_revenue(c.source_asset),
                c.spread,
                TransferKind.FX_SPREAD,
                claim_id,
                correlation_id=correlation_id,
            )
        )
    legs.append(
        Transfer.of(
            fx_account(c.target_asset),
            accounts.external(provider, c.target_asset),
            c.target_amount,
            TransferKind.FX_TARGET,
            claim_id,
            correlation_id=correlation_id,
        )
    )
    return legs


def returned_legs(
    claim_id: str,
    *,
    player_id: str,
    source_amount: int,
    conversion: Conversion,
    returned: int,
    provider: str,
    correlation_id: str | None,
) -> list[Transfer]:
    """A converted payout returned (`returned` target minor units): back through the FX desk at the locked rate. A
    whole return gives the wallet back all it gave (net and spread); a partial one gives back
    floor(net * returned / target) of the net and keeps the spread."""
    c = conversion
    net = source_amount - c.spread
    whole = returned == c.target_amount
    back = net if whole else net * returned // c.target_amount
    legs = [
        Transfer.of(
            accounts.external(provider, c.target_asset),
            fx_account(c.target_asset),
            returned,
            TransferKind.PAYOUT_RETURN,
            claim_id,
            correlation_id=correlation_id,
        )
    ]
    if back:
        legs.append(
            Transfer.of(
                fx_account(c.source_asset),
                accounts.wallet(player_id, c.source_asset),
                back,
                TransferKind.FX_RETURN,
                claim_id,
                correlation_id=correlation_id,
            )
        )
    if whole and c.spread:
        legs.append(
            Transfer.of(
                spread_revenue(c.source_asset),
                accounts.wallet(player_id, c.source_asset),
                c.spread,
                TransferKind.FX_SPREAD_RETURN,
                claim_id,
                correlation_id=correlation_id,
            )
        )
    return legs


__all__ = [
    "FX_DESK",
    "RATE_CODE",
    "Conversion",
    "ConversionOutOfRangeError",
    "Pair",
    "Quote",
    "QuoteRefusal",
    "Terms",
    "check",
    "convert",
    "fx_account",
    "moved_bps",
    "paid_legs",
    "quote_id_for",
    "rate_code",
    "returned_legs",
    "spread_revenue",
    "stale",
]
