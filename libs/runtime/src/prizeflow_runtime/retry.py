"""Exponential backoff, capped, optionally jittered: the one implementation every retry loop uses.

`backoff_delay(attempt, base=..., cap=...)` is pure (what a scheduler stores as `next_attempt_at` uses it as is);
`Backoff` counts failures since the last success for a loop that retries until something answers. Units are the
caller's: pass milliseconds, get milliseconds.

The ceiling of attempt `n` (1-based) is `min(cap, base * 2**(n-1))`. With jitter the delay is a uniform draw in
`[ceiling/2, ceiling]`: half the ceiling is kept so a retry is never immediate, the other half spreads a herd
of failures (replicas that lost the same deadlock, services waiting for the same broker) apart. Without jitter
it is the ceiling itself (a pure schedule, `next_attempt_at`). Every reconnect loop jitters: replicas that lost the
same broker or database come back spread out, not in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

_MAX_EXPONENT = 32  # past 2**32 any realistic cap has long been reached; keeps the arithmetic small


def backoff_delay(
    attempt: int, *, base: float, cap: float, jitter: bool = True, rng: random.Random | None = None
) -> float:
    """The wait before retry number `attempt` (1-based): exponential from `base`, at most `cap`, jittered."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling: float = min(cap, base * 2 ** min(attempt - 1, _MAX_EXPONENT))
    if not jitter:
        return ceiling
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(slots=True)
class Backoff:
    """Failures since the last success, and the wait each one earns: `next()` after a failure, `reset()` after
    a success."""

    base: float
    cap: float
    jitter: bool = True
    rng: random.Random | None = None
    failures: int = field(default=0, init=False)

    def next(self) -> float:
        self.failures += 1
        return backoff_delay(self.failures, base=self.base, cap=self.cap, jitter=self.jitter, rng=self.rng)

    def reset(self) -> None:
        self.failures = 0


__all__ = ["Backoff", "backoff_delay"]
