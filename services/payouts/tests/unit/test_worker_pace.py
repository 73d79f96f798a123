"""The worker's pace, as a job on the runtime's scheduler: no pause while batches are full, the base interval after
work, and an idle worker sleeping until the books say the next payout is due, at most `idle_max_s` (backing off,
doubling, while something is due that its pass did not get) — woken at once by a request or an approval, which
restarts the doubling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig, WorkerResult
from prizeflow_runtime.jobs import Scheduled


class _DueIn:
    """The books' answer to `next_due_in` (0: something is due now that the pass did not get)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    async def next_due_in(self, *, providers: Sequence[str]) -> float | None:
        return self.seconds


def _pauses(
    processed: list[int], woken_at: set[int], config: WorkerConfig, *, due_in: float | None = 0.0
) -> list[float]:
    """The waits the scheduler makes between the worker's passes (the passes' results scripted); a wake arrives
    during the waits numbered in `woken_at`; after a pass that found nothing, the books say the next payout is due
    in `due_in` seconds."""
    pauses: list[float] = []

    @asynccontextmanager
    async def uow() -> AsyncIterator[Any]:
        yield SimpleNamespace(payouts=_DueIn(due_in))

    async def run() -> None:
        worker = PayoutWorker(uow=uow, registry=[], builder=None, config=config)  # type: ignore[arg-type]
        scheduled = Scheduled(worker, "payout-worker", config.interval_s, max(config.idle_max_s, config.interval_s))
        results: Iterator[int] = iter(processed)

        async def run_pass() -> tuple[WorkerResult, bool]:
            try:
                n = next(results)
                return WorkerResult(processed=n), n >= config.batch_size
            except StopIteration:
                scheduled._stopping = True  # the script is over: this pass is the last
                return WorkerResult(), False

        async def sleep(seconds: float) -> None:
            pauses.append(seconds)
            if len(pauses) - 1 in woken_at:
                scheduled.wake()

        worker.run_pass = run_pass  # type: ignore[method-assign]
        scheduled._sleep = sleep  # type: ignore[method-assign]
        await scheduled._run()

    asyncio.run(run())
    return pauses


def test_an_idle_worker_backs_off_to_its_maximum_and_work_brings_back_the_interval() -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=1.0)
    pauses = _pauses([0, 0, 0, 0, 0, 0, 3, 0, 10, 10, 0], set(), config)
    # (the last pause is the pass that finds the script over and stops)
    # six idle passes: doubling to the maximum; work (3): the interval; idle: the interval, then doubling again;
    # two full batches: no pause at all (0 s), and the doubling starts over
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1, 0.1, 0.0, 0.0, 0.1, 0.2]


def test_a_wake_restarts_the_doubling() -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=1.0)
    pauses = _pauses([0, 0, 0, 0, 0, 0], {3}, config)
    assert pauses == [0.1, 0.2, 0.4, 0.8, 0.1, 0.2, 0.4]


def test_a_maximum_below_the_interval_keeps_the_interval() -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=0.05)
    assert _pauses([0, 0], set(), config) == [0.1, 0.1, 0.1]


@pytest.mark.parametrize(
    ("due_in", "pause"),
    [(None, 5.0), (0.3, 0.3), (60.0, 5.0), (0.01, 0.1)],
    ids=["nothing waits: the maximum", "due soon: then", "due later: the maximum", "never below the interval"],
)
def test_an_idle_worker_sleeps_until_the_next_payout_is_due_at_most_its_maximum(
    due_in: float | None, pause: float
) -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=5.0)
    assert _pauses([0], set(), config, due_in=due_in) == [pause, pause]
