"""Is a series clearly rising? The soak's statistics (`make soak`): pure functions, no I/O.

A soak samples RSS, latency percentiles, table sizes and lag every few seconds; "it leaks" must mean more than
"the last sample is higher than the first". A series is judged rising when, after a warm-up:

- its Theil-Sen slope (the median of all pairwise slopes: one outlier cannot move it) has a confidence interval
  (Sen's, from Kendall's S) that excludes zero, AND
- the growth that slope implies over the judged span is above a relative threshold (and an absolute floor),
  measured from the fitted level at the start of the span.

Samples of one run are autocorrelated (a garbage collector's sawtooth, a batch that comes back every minute):
Sen's interval assumes independent points and would be far too narrow on them. So the slope is fitted on the
medians of a few contiguous blocks (`blocks`, 12 by default) rather than on every sample: a block spans several
periods of anything periodic, which its median averages out, and 12 points are few enough for an interval that
means something. A statistically clear but tiny slope (a few kB an hour) is no verdict either: the thresholds say
how much growth matters.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

HOUR = 3600.0
MIN_POINTS = 6  # fewer samples after the warm-up: no verdict (too few to tell a trend from noise)


@dataclass(frozen=True, slots=True)
class Slope:
    """A Theil-Sen slope (per unit of x) with its confidence interval and the fitted intercept."""

    slope: float
    low: float
    high: float
    intercept: float


@dataclass(frozen=True, slots=True)
class Trend:
    """The verdict on one series. Slopes are per hour; `growth` is relative to the fitted start level."""

    judged: bool  # False: too few samples after the warm-up (`reason` says so); never `rising` then
    rising: bool
    samples: int  # after the warm-up
    slope_per_h: float
    low_per_h: float
    high_per_h: float
    start: float  # fitted level at the first judged sample
    end: float  # fitted level at the last judged sample
    growth: float  # (end - start) / |start|; inf when the series starts at 0 and grows
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "judged": self.judged,
            "rising": self.rising,
            "samples": self.samples,
            "slope_per_h": _round(self.slope_per_h),
            "slope_ci_per_h": [_round(self.low_per_h), _round(self.high_per_h)],
            "start": _round(self.start),
            "end": _round(self.end),
            "growth_pct": None if math.isinf(self.growth) else round(self.growth * 100, 1),
            "reason": self.reason,
        }


def _round(x: float) -> float:
    return round(x, 3) if abs(x) < 1000 else round(x)


def theil_sen(xs: Sequence[float], ys: Sequence[float], *, confidence: float = 0.95) -> Slope:
    """Theil-Sen slope of `ys` over `xs`, with Sen's (1968) distribution-free interval at `confidence`.

    The interval's bounds are order statistics of the pairwise slopes, `C = z * sqrt(Var S)` ranks either side of
    the middle (Var S of Kendall's S without ties); ranks are rounded outwards, so the interval errs wide."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("theil_sen needs two or more (x, y) points")
    slopes = sorted(
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs)) if xs[j] != xs[i]
    )
    if not slopes:
        raise ValueError("theil_sen needs two distinct x values")
    slope = statistics.median(slopes)
    n, pairs = len(xs), len(slopes)
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    c = z * math.sqrt(n * (n - 1) * (2 * n + 5) / 18)
    low_rank = max(0, math.floor((pairs - c) / 2) - 1)  # 1-based rank (N - C)/2, as a 0-based index
    high_rank = min(pairs - 1, math.ceil((pairs + c) / 2))  # 1-based rank (N + C)/2 + 1
    intercept = statistics.median(y - slope * x for x, y in zip(xs, ys, strict=True))
    return Slope(slope=slope, low=slopes[low_rank], high=slopes[high_rank], intercept=intercept)


def block_medians(xs: Sequence[float], ys: Sequence[float], blocks: int) -> tuple[list[float], list[float]]:
    """The series cut into `blocks` contiguous runs of (nearly) equal length, each reduced to its median x and
    median y; a series of at most `blocks` points is returned as it is."""
    n = len(xs)
    if n <= blocks:
        return list(xs), list(ys)
    bounds = [round(k * n / blocks) for k in range(blocks + 1)]
    bx = [statistics.median(xs[a:b]) for a, b in itertools.pairwise(bounds)]
    by = [statistics.median(ys[a:b]) for a, b in itertools.pairwise(bounds)]
    return bx, by


def detect_trend(
    times: Sequence[float],
    values: Sequence[float],
    *,
    warmup_s: float = 0.0,
    min_relative: float = 0.1,
    min_absolute: float = 0.0,
    confidence: float = 0.95,
    blocks: int = 12,
) -> Trend:
    """Whether `values` (sampled at `times`, in seconds) rise clearly once the first `warmup_s` seconds (from
    `times[0]`) are left out: Sen's interval of the block medians' slope excludes zero, and the implied growth
    over the judged span is at least `min_relative` of the fitted start level and at least `min_absolute`."""
    if len(times) != len(values):
        raise ValueError("times and values differ in length")
    points = [(t, v) for t, v in zip(times, values, strict=True) if times and t >= times[0] + warmup_s]
    if len(points) < MIN_POINTS:
        return Trend(
            judged=False, rising=False, samples=len(points), slope_per_h=0.0, low_per_h=0.0, high_per_h=0.0,
            start=0.0, end=0.0, growth=0.0,
            reason=f"{len(points)} samples after the warm-up: at least {MIN_POINTS} are needed for a verdict",
        )  # fmt: skip
    xs, ys = [t for t, _ in points], [v for _, v in points]
    bx, by = block_medians(xs, ys, blocks)
    fit = theil_sen(bx, by, confidence=confidence)
    start = fit.intercept + fit.slope * xs[0]
    end = fit.intercept + fit.slope * xs[-1]
    growth_abs = end - start
    growth = growth_abs / abs(start) if start != 0 else (math.inf if growth_abs > 0 else 0.0)
    clear = fit.low > 0
    large = growth >= min_relative and growth_abs >= min_absolute
    rising = clear and large
    if rising:
        reason = "rising: the slope's interval excludes zero and the growth is above the thresholds"
    elif clear:
        reason = "a clear but small slope: below the growth thresholds"
    else:
        reason = "no clear upward slope: its interval includes zero or is below it"
    return Trend(
        judged=True, rising=rising, samples=len(points), slope_per_h=fit.slope * HOUR, low_per_h=fit.low * HOUR,
        high_per_h=fit.high * HOUR, start=start, end=end, growth=growth, reason=reason,
    )  # fmt: skip


__all__ = ["HOUR", "MIN_POINTS", "Slope", "Trend", "block_medians", "detect_trend", "theil_sen"]
