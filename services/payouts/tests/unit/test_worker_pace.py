"""The worker's pace, as a job on the runtime's scheduler: no pause while batches are full, the base interval after
work, and an idle worker backing off (doubling) to `idle_max_s` — woken at once by a request or an approval, which
restarts the doubling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig, WorkerResult
from prizeflow_runtime.jobs import Scheduled


def _pauses(processed: list[int], woken_at: set[int], config: WorkerConfig) -> list[float]:
    """The waits the scheduler makes between the worker's passes (the passes' results scripted); a wake arrives
    during the waits numbered in `woken_at`."""
    pauses: list[float] = []

    async def run() -> None:
        worker = PayoutWorker(uow=None, registry=None, builder=None, config=config)  # type: ignore[arg-type]
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
