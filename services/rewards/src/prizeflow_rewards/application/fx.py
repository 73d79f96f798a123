"""Currency conversion at claim time (docs/adr/0015-currency-conversion.md): quotes from the rates provider, the market
rate a claim's quote is checked against, and the FX desk's daily reconciliation.

A quote is issued in a transaction of its own, after the rates provider answered (never inside one). A claim
carrying a quote locks it in its intake batch's transaction (`SubmitClaim`); the rate it is checked against is read
before the batch (`QuoteMarket`): the provider unreachable or stale then refuses the claim (503), never guesses.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.common import Clock, utcnow
from prizeflow_rewards.application.ports import FxPosition, MarketRate, RatesProvider, RatesUnavailableError
from prizeflow_rewards.domain.fx import (
    ConversionOutOfRangeError,
    Pair,
    Quote,
    QuoteRefusal,
    convert,
    quote_id_for,
    rate_code,
    stale,
)
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork

log = logging.getLogger(__name__)


class FxError(UseCaseError):
    """A quote or a conversion refused; `code` is stable, `errors` names the field (problem details)."""


def field_error(kind: ErrorKind, code: str, detail: str, key: str, **extra: Any) -> FxError:
    return FxError(kind, code, detail, errors=[{"key": key, "message": detail, "source": "body"}], **extra)


# What a claim's quote refusal answers: its status, and whether a new quote comes with it.
REFUSALS: Mapping[QuoteRefusal, tuple[ErrorKind, str, bool]] = {
    QuoteRefusal.QUOTE_UNKNOWN: (ErrorKind.INVALID, "no quote of this player has this id", False),
    QuoteRefusal.QUOTE_MISMATCH: (ErrorKind.INVALID, "the quote is for another asset or amount than the claim", False),
    QuoteRefusal.QUOTE_USED: (ErrorKind.CONFLICT, "the quote was taken by another claim", False),
    QuoteRefusal.QUOTE_EXPIRED: (ErrorKind.CONFLICT, "the quote expired; a new quote is attached", True),
    QuoteRefusal.QUOTE_MOVED: (ErrorKind.CONFLICT, "the rate moved since the quote; a new quote is attached", True),
}


def quote_refusal(refusal: QuoteRefusal) -> FxError:
    kind, detail, _ = REFUSALS[refusal]
    return field_error(kind, refusal.value, detail, "quote_id")


def requotes(err: UseCaseError) -> bool:
    """A claim refused for a quote that a new one answers (expired, moved)."""
    return any(err.code == r.value and REFUSALS[r][2] for r in QuoteRefusal)


@dataclass(frozen=True)
class FxDesk:
    """What the operator enabled: the pairs and their spreads, and how long a quote and a rate hold."""

    spreads: Mapping[Pair, int] = field(default_factory=dict)
    quote_ttl_s: int = 60
    max_rate_age_s: int = 900
    max_move_bps: int = 50

    @classmethod
    def of(cls, pairs: Mapping[str, int], **kw: int) -> FxDesk:
        return cls({Pair.parse(p): bps for p, bps in pairs.items()}, **kw)


@dataclass
class IssueQuote:
    """A quote for a player: the pair enabled, the provider's rate fresh, the conversion paying something."""

    uow: UnitOfWork[Books]
    rates: RatesProvider | None
    desk: FxDesk
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def __call__(self, actor: Principal, player_id: str, *, source: str, target: str, amount: int) -> Quote:
        pair = Pair(source, target)
        if pair not in self.desk.spreads:
            enabled = ", ".join(str(p) for p in sorted(self.desk.spreads)) or "none"
            raise field_error(
                ErrorKind.INVALID, "pair_not_enabled", f"{pair} is not converted (enabled: {enabled})", "target_asset"
            )
        market = await market_rate(self.rates, pair, self.desk, self.clock(), self.metrics)
        try:
            terms = convert(pair, amount, market.rate, self.desk.spreads[pair])
        except ConversionOutOfRangeError as err:
            raise field_error(ErrorKind.INVALID, "amount_out_of_range", str(err), "amount") from err
        except ValueError as err:
            raise field_error(ErrorKind.INVALID, "amount_too_small", str(err), "amount") from err
        now = self.clock()
        quote = Quote(
            quote_id_for(player_id, pair, amount, market.timestamp, secrets.token_hex(8)),
            player_id,
            terms,
            market.timestamp,
            now,
            now + timedelta(seconds=self.desk.quote_ttl_s),
        )
        async with self.uow() as books:
            await books.fx.add(quote)
        if self.metrics is not None:
            self.metrics.fx_quotes.labels(str(pair)).inc()
        log.info("fx quote issued", extra={"quote_id": quote.id, "pair": str(pair)})
        return quote


async def market_rate(
    rates: RatesProvider | None, pair: Pair, desk: FxDesk, now: datetime, metrics: RewardsMetrics | None = None
) -> MarketRate:
    """The provider's rate for `pair`, fresh: else 503 (no provider configured, unreachable, or stale)."""
    if rates is None:
        raise FxError(ErrorKind.UNAVAILABLE, "rates_unavailable", "no rates provider is configured")
    try:
        market = await rates.latest(rate_code(pair.source), rate_code(pair.target))
    except RatesUnavailableError as err:
        if metrics is not None:
            metrics.fx_rate_failures.inc()
        log.warning("rates provider unavailable: %s", err.detail)
        raise FxError(ErrorKind.UNAVAILABLE, "rates_unavailable", "the rates provider did not answer") from err
    if metrics is not None:
        metrics.fx_rate_timestamp.labels(str(pair)).set(market.timestamp.timestamp())
    if stale(market.timestamp, now, desk.max_rate_age_s):
        raise FxError(ErrorKind.UNAVAILABLE, "rate_stale", "the rates provider's latest rate is too old to quote")
    return market


@dataclass
class QuoteMarket:
    """The market rate a claim's quote is checked against, read just before the claim's batch."""

    uow: UnitOfWork[Books]
    rates: RatesProvider | None
    desk: FxDesk
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def quote(self, quote_id: str) -> Quote | None:
        async with self.uow() as books:
            return await books.fx.get(quote_id)

    async def __call__(self, quote_id: str) -> Decimal | None:
        """None for a quote that does not exist (the batch refuses it by its id)."""
        quote = await self.quote(quote_id)
        if quote is None:
            return None
        return (await market_rate(self.rates, quote.terms.pair, self.desk, self.clock(), self.metrics)).rate


@dataclass
class WatchRates:
    """Each enabled pair's rate read on a schedule, so a stale or silent provider shows (and alerts,
    `PrizeflowFxRatesOutage`) before a player asks for a quote: `prizeflow_rewards_fx_rate_timestamp_seconds{pair}`."""

    rates: RatesProvider | None
    desk: FxDesk
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def tick(self) -> bool:
        for pair in sorted(self.desk.spreads):
            try:
                await market_rate(self.rates, pair, self.desk, self.clock(), self.metrics)
            except FxError as err:
                log.warning("fx rate of %s not usable: %s", pair, err.code)
        return True


@dataclass
class ReconcileFx:
    """The FX accounts, daily: each asset's ledger position against what the desk's transfers add up to, recorded per
    (day, asset); a difference is logged and counted (alert `PrizeflowFxPositionDrift`)."""

    uow: UnitOfWork[Books]
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def tick(self) -> bool:
        await self()
        return True

    async def __call__(self, day: date | None = None) -> list[FxPosition]:
        now = self.clock()
        async with self.uow() as books:
            positions = await books.fx.positions()
            await books.fx.record_reconciliation(day or now.date(), positions, at=now)
        for p in positions:
            if p.difference:
                log.error("fx position of %s differs from its transfers by %d", p.asset, p.difference)
            if self.metrics is not None:
                self.metrics.fx_position.labels(p.asset).set(p.ledger)
                self.metrics.fx_position_difference.labels(p.asset).set(p.difference)
        if self.metrics is not None:
            self.metrics.fx_reconciled_at.set(now.timestamp())
        return positions


__all__ = [
    "FxDesk",
    "FxError",
    "IssueQuote",
    "QuoteMarket",
    "ReconcileFx",
    "WatchRates",
    "field_error",
    "market_rate",
    "quote_refusal",
    "requotes",
]
