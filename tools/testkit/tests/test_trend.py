"""The soak's trend detection (unit tier, synthetic series): it sees a real rise, and neither flat noise nor a
garbage collector's sawtooth nor a warm-up is mistaken for one."""

from __future__ import annotations

import math
import random

import pytest

from prizeflow_testkit.trend import block_medians, detect_trend, theil_sen

MB = 1024.0  # the series below are in kB, as RSS is sampled
STEP = 10.0  # seconds between samples, as the soak's default
RUN = 180  # samples: 30 minutes
WARMUP = 300.0


def times(n: int = RUN) -> list[float]:
    return [i * STEP for i in range(n)]


def test_theil_sen_recovers_a_line_and_ignores_outliers() -> None:
    xs = [float(x) for x in range(20)]
    ys = [3.0 + 2.0 * x for x in xs]
    ys[4], ys[15] = 1_000.0, -1_000.0  # two wild samples
    fit = theil_sen(xs, ys)
    assert fit.slope == pytest.approx(2.0)
    assert fit.intercept == pytest.approx(3.0)
    assert fit.low <= 2.0 <= fit.high


def test_theil_sen_interval_covers_the_true_slope_of_a_noisy_line() -> None:
    rng = random.Random(7)
    xs = [float(x) for x in range(30)]
    ys = [0.5 * x + rng.gauss(0, 3) for x in xs]
    fit = theil_sen(xs, ys)
    assert fit.low < 0.5 < fit.high
    assert fit.low < fit.slope < fit.high


def test_theil_sen_refuses_too_few_points() -> None:
    with pytest.raises(ValueError, match="two or more"):
        theil_sen([1.0], [1.0])
    with pytest.raises(ValueError, match="distinct"):
        theil_sen([1.0, 1.0], [1.0, 2.0])


def test_block_medians_reduce_a_long_series_and_keep_a_short_one() -> None:
    xs = [float(x) for x in range(100)]
    bx, by = block_medians(xs, xs, 10)
    assert len(bx) == len(by) == 10
    assert bx[0] == pytest.approx(4.5)
    assert bx[-1] == pytest.approx(94.5)
    assert block_medians(xs[:5], xs[:5], 10) == (xs[:5], xs[:5])


@pytest.mark.parametrize("seed", range(5))
def test_a_steady_leak_under_noise_is_rising(seed: int) -> None:
    """150 MB growing 1 MB a minute (20% over the judged 25 minutes), with 3 MB of noise."""
    rng = random.Random(seed)
    ts = times()
    rss = [150 * MB + t / 60 * MB + rng.gauss(0, 3 * MB) for t in ts]
    trend = detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB)
    assert trend.judged
    assert trend.rising, trend
    assert trend.slope_per_h == pytest.approx(60 * MB, rel=0.2)
    assert trend.low_per_h > 0


@pytest.mark.parametrize("seed", range(20))
def test_flat_noise_is_not_rising(seed: int) -> None:
    rng = random.Random(seed)
    ts = times()
    rss = [150 * MB + rng.gauss(0, 5 * MB) for _ in ts]
    trend = detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB)
    assert trend.judged
    assert not trend.rising, trend


def sawtooth(t: float, *, period: float, amplitude: float, phase: float) -> float:
    """Climbs for a period, then falls back at once: a heap a collector empties every `period` seconds."""
    return amplitude * (((t + phase) % period) / period)


@pytest.mark.parametrize(("period", "phase"), [(90.0, 0.0), (90.0, 45.0), (150.0, 20.0), (60.0, 50.0)])
def test_a_gc_like_sawtooth_is_not_rising(period: float, phase: float) -> None:
    """30 MB teeth on 150 MB (20%, as much as the threshold) and noise: the slope within each tooth is steep,
    yet nothing grows from one tooth to the next."""
    rng = random.Random(int(period + phase))
    ts = times()
    rss = [150 * MB + sawtooth(t, period=period, amplitude=30 * MB, phase=phase) + rng.gauss(0, 1 * MB) for t in ts]
    trend = detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB)
    assert trend.judged
    assert not trend.rising, trend


def test_a_sawtooth_on_a_rising_floor_is_rising() -> None:
    rng = random.Random(3)
    ts = times()
    rss = [
        150 * MB + t / 60 * MB + sawtooth(t, period=90, amplitude=30 * MB, phase=0) + rng.gauss(0, 1 * MB) for t in ts
    ]
    assert detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB).rising


def test_the_warm_up_is_left_out() -> None:
    """A cache filling for the first five minutes of a ten-minute run, flat after: a leak only if the warm-up
    is judged."""
    rng = random.Random(11)
    ts = times(60)
    rss = [100 * MB + min(t, WARMUP) / WARMUP * 50 * MB + rng.gauss(0, 1 * MB) for t in ts]
    assert detect_trend(ts, rss, warmup_s=0, min_relative=0.1, min_absolute=8 * MB).rising
    after = detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB)
    assert after.judged
    assert not after.rising, after
    assert after.samples == 60 - int(WARMUP / STEP)


def test_a_clear_but_small_rise_is_below_the_threshold() -> None:
    """+2% over the run, without noise: certain, and too small to matter."""
    ts = times()
    rss = [150 * MB + t / ts[-1] * 3 * MB for t in ts]
    trend = detect_trend(ts, rss, warmup_s=WARMUP, min_relative=0.1, min_absolute=8 * MB)
    assert trend.low_per_h > 0
    assert not trend.rising
    assert "small" in trend.reason


def test_a_series_from_zero_grows_infinitely_relative_to_its_start() -> None:
    ts = times()
    lag = [float(10 * i) for i in range(RUN)]
    trend = detect_trend(ts, lag, warmup_s=WARMUP, min_relative=0.1, min_absolute=100)
    assert trend.rising
    assert trend.growth > 1
    assert detect_trend(ts, [0.0] * RUN, warmup_s=WARMUP, min_absolute=100).growth == 0


def test_too_few_samples_after_the_warm_up_give_no_verdict() -> None:
    ts = times(33)  # 5.5 minutes: 3 samples after a 5-minute warm-up
    trend = detect_trend(ts, [float(i) for i in range(33)], warmup_s=WARMUP)
    assert not trend.judged
    assert not trend.rising
    assert "at least" in trend.reason
    assert trend.as_dict()["judged"] is False


def test_the_verdict_serialises() -> None:
    ts = times()
    doc = detect_trend(ts, [float(i) for i in range(RUN)], warmup_s=WARMUP).as_dict()
    assert doc["rising"] is True
    assert isinstance(doc["slope_ci_per_h"], list)
    assert not math.isnan(float(str(doc["slope_per_h"])))
