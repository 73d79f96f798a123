"""What happens after a provider attempt: retry after backoff, give up, or wait for a confirmation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_runtime.retry import backoff_delay


def backoff_seconds(attempt: int, *, base_ms: int, max_ms: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: a uniform draw in [cap/2, cap], cap = min(max, base * 2^(attempt-1)).

    Half the cap is kept so a retry is never immediate; the other half spreads a herd of failures out.
    """
    return backoff_delay(attempt, base=base_ms, cap=max_ms, rng=rng) / 1000


class AfterFailure(StrEnum):
    RETRY = "retry"  # failed, back to approved once the backoff passes
    FINAL = "final"  # failed for good: the reservation is voided downstream
    AWAIT_CONFIRMATION = "await_confirmation"  # the provider may hold it: keep syncing, never fail it blind


# Codes after which the provider may hold the payout: giving up on them could pay twice.
UNKNOWN_OUTCOME_CODES = frozenset({PayoutErrorCode.TIMEOUT_UNKNOWN_OUTCOME})


@dataclass(frozen=True, slots=True)
class FailurePlan:
    after: AfterFailure
    retryable: bool  # as published in PayoutFailed (narrowed to False once attempts are exhausted)


def plan_after_failure(*, code: PayoutErrorCode, retryable: bool, attempts: int, max_attempts: int) -> FailurePlan:
    if retryable and attempts < max_attempts:
        return FailurePlan(AfterFailure.RETRY, retryable=True)
    if code in UNKNOWN_OUTCOME_CODES:
        return FailurePlan(AfterFailure.AWAIT_CONFIRMATION, retryable=False)
    return FailurePlan(AfterFailure.FINAL, retryable=False)


__all__ = ["UNKNOWN_OUTCOME_CODES", "AfterFailure", "FailurePlan", "backoff_seconds", "plan_after_failure"]
