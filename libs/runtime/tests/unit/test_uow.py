"""The unit of work's retry: a lost race is run again whole, a bounded number of times; nothing else is retried."""

from __future__ import annotations

import pytest

from prizeflow_runtime.uow import ContentionRetry, TransactionContendedError, run_contended


class Deadlock(Exception):
    sqlstate = "40P01"


class Wrapped(Exception):
    """SQLAlchemy's shape: the driver's error in `orig`."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__("wrapped")
        self.orig = orig


async def no_sleep(_: float) -> None:
    return None


async def test_a_lost_race_is_run_again_whole_until_it_wins() -> None:
    runs: list[int] = []
    told: list[str] = []

    async def attempt() -> str:
        runs.append(len(runs))
        if len(runs) < 3:
            raise Wrapped(Deadlock())
        return "committed"

    result = await run_contended(attempt, policy=ContentionRetry(attempts=4), on_retry=told.append, sleep=no_sleep)
    assert (result, len(runs), told) == ("committed", 3, ["retried", "retried"])


async def test_a_race_lost_every_time_is_a_contention_error_with_retry_after() -> None:
    told: list[str] = []

    async def attempt() -> None:
        raise Deadlock()

    with pytest.raises(TransactionContendedError) as lost:
        await run_contended(
            attempt, policy=ContentionRetry(attempts=3, retry_after_s=2), on_retry=told.append, sleep=no_sleep
        )
    assert (lost.value.attempts, lost.value.retry_after_s) == (3, 2)
    assert told == ["retried", "retried", "gave_up"]


async def test_any_other_error_goes_straight_to_the_caller() -> None:
    runs = 0

    async def attempt() -> None:
        nonlocal runs
        runs += 1
        raise ValueError("a refusal")

    with pytest.raises(ValueError, match="a refusal"):
        await run_contended(attempt, policy=ContentionRetry(), sleep=no_sleep)
    assert runs == 1
