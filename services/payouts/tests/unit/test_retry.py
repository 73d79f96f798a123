"""Backoff and what follows a failure."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prizeflow_contracts.errors import PAYOUT_ERROR_RETRYABLE, PayoutErrorCode
from prizeflow_payouts.domain.retry import AfterFailure, backoff_seconds, plan_after_failure


@given(st.integers(1, 60), st.integers(1, 10_000), st.integers(1, 10**7), st.integers(0, 2**32))
def test_backoff_stays_within_half_cap_and_cap(attempt: int, base: int, cap: int, seed: int) -> None:
    delay = backoff_seconds(attempt, base_ms=base, max_ms=cap, rng=random.Random(seed))
    ceiling = min(cap, base * 2 ** min(attempt - 1, 32)) / 1000
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_grows_exponentially_until_the_cap() -> None:
    high = random.Random(0)
    high.uniform = lambda a, b: b  # type: ignore[method-assign]
    assert [backoff_seconds(n, base_ms=100, max_ms=1000, rng=high) for n in range(1, 7)] == [
        0.1,
        0.2,
        0.4,
        0.8,
        1.0,
        1.0,
    ]


def test_backoff_is_jittered() -> None:
    rng = random.Random(7)
    assert len({backoff_seconds(5, base_ms=1000, max_ms=60_000, rng=rng) for _ in range(50)}) > 40


def test_attempt_is_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        backoff_seconds(0, base_ms=1, max_ms=1)


@pytest.mark.parametrize("code", list(PayoutErrorCode))
def test_plan_follows_the_code_table(code: PayoutErrorCode) -> None:
    retryable = PAYOUT_ERROR_RETRYABLE[code]
    plan = plan_after_failure(code=code, retryable=retryable, attempts=1, max_attempts=5)
    assert plan.after is (AfterFailure.RETRY if retryable else AfterFailure.FINAL)


def test_exhausted_retryable_is_final_and_not_retryable() -> None:
    plan = plan_after_failure(code=PayoutErrorCode.RATE_LIMITED, retryable=True, attempts=5, max_attempts=5)
    assert (plan.after, plan.retryable) == (AfterFailure.FINAL, False)


def test_exhausted_unknown_outcome_is_never_failed_blind() -> None:
    plan = plan_after_failure(code=PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME, retryable=True, attempts=5, max_attempts=5)
    assert plan.after is AfterFailure.AWAIT_CONFIRMATION
