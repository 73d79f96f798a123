"""The one backoff implementation: exponential, capped, jittered in [ceiling/2, ceiling]; and the delays each
retry loop of the runtime gets from it are today's."""

from __future__ import annotations

import random

import pytest

from prizeflow_runtime.retry import Backoff, backoff_delay


def test_without_jitter_the_delay_doubles_from_the_base_up_to_the_cap() -> None:
    assert [backoff_delay(n, base=0.1, cap=5.0, jitter=False) for n in range(1, 10)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    )


@pytest.mark.parametrize("attempt", [1, 2, 3, 7, 40, 10_000])
def test_with_jitter_the_delay_is_between_half_the_ceiling_and_the_ceiling(attempt: int) -> None:
    ceiling = min(5_000, 100 * 2 ** min(attempt - 1, 32))
    rng = random.Random(attempt)
    delays = [backoff_delay(attempt, base=100, cap=5_000, rng=rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 150  # jittered: a herd of failures is spread apart


def test_the_draw_is_the_same_as_the_loops_it_replaced() -> None:
    """Same seed, same delays as the hand-written formulas (consumer, rewards transactions, payouts domain)."""
    for attempt in range(1, 12):
        ours, theirs = random.Random(attempt), random.Random(attempt)
        cap = min(5_000, 100 * 2 ** (attempt - 1))
        assert backoff_delay(attempt, base=100, cap=5_000, rng=ours) == theirs.uniform(cap / 2, cap)


def test_start_up_pauses_keep_their_range() -> None:
    """ServiceRuntime._pause: uniform(0.5, 1) * min(cap, 0.2 * 2**min(failures, 16))."""
    for failures in (1, 2, 5, 16, 17, 100):
        ceiling = min(10.0, 0.2 * 2 ** min(failures, 16))
        delay = backoff_delay(min(failures, 16) + 1, base=0.2, cap=10.0, rng=random.Random(failures))
        assert ceiling / 2 <= delay <= ceiling


def test_attempts_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_delay(0, base=1, cap=1)


def test_backoff_counts_failures_until_a_success_resets_it() -> None:
    backoff = Backoff(base=0.1, cap=5.0, jitter=False)  # the outbox relay's
    assert [backoff.next() for _ in range(8)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    backoff.reset()
    assert backoff.next() == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("backoff", "today"),
    [
        # consumer, database outage: min(5.0, 0.2 * 2 ** min(outage, 5)) for outage = 1, 2, ...
        (Backoff(base=0.4, cap=5.0, jitter=False), [min(5.0, 0.2 * 2 ** min(n, 5)) for n in range(1, 10)]),
        # consumer recording a dead letter, and the relay process starting its producer (STARTUP_RETRY_MAX_MS
        # defaults to 10 s): 0.2 doubling to 10 s
        (Backoff(base=0.2, cap=10.0, jitter=False), [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]),
        # outbox relay: 0.1 doubling to 5 s
        (Backoff(base=0.1, cap=5.0, jitter=False), [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]),
    ],
)
def test_the_runtime_loops_keep_their_delays(backoff: Backoff, today: list[float]) -> None:
    assert [backoff.next() for _ in today] == pytest.approx(today)


def test_jittered_backoff_stays_in_range() -> None:
    backoff = Backoff(base=20, cap=400, rng=random.Random(3))
    for n in range(1, 12):
        ceiling = min(400, 20 * 2 ** (n - 1))
        assert ceiling / 2 <= backoff.next() <= ceiling
