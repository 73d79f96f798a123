"""The scheduled runs are a job on the runtime's scheduler (issue 45): a process that starts runs only the last due
window (it does not hold its consumers up with a day of catching up), every later tick the last `CATCH_UP` windows,
the gauges read each time; a stop cuts a run mid-way (a run is resumable: its pages are staged, its lease lapses)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from prizeflow_reconciliation.application.runs import CATCH_UP, ScheduledRuns
from prizeflow_reconciliation.bootstrap import SCHEDULE_JOB, Reconciliation
from prizeflow_runtime.jobs import Scheduler


@dataclass
class _Windows:
    passes: list[int] = field(default_factory=list)
    block: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: bool = False

    async def run_due(self, windows: int = CATCH_UP) -> None:
        self.passes.append(windows)
        self.entered.set()
        if self.block:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise


@dataclass
class _Gauges:
    refreshed: int = 0

    async def refresh(self) -> None:
        self.refreshed += 1


def _parts(windows: _Windows, gauges: _Gauges) -> Reconciliation:
    none: Any = None
    return Reconciliation(windows, none, gauges, none, none, none, none)  # type: ignore[arg-type]


async def test_the_first_tick_runs_the_last_window_and_later_ones_catch_up() -> None:
    windows, gauges = _Windows(), _Gauges()
    job = ScheduledRuns(windows, gauges)  # type: ignore[arg-type]
    assert await job.tick() is True
    assert await job.tick() is True
    assert await job.tick() is True
    assert windows.passes == [1, CATCH_UP, CATCH_UP]
    assert gauges.refreshed == 3


async def test_the_schedule_is_a_job_of_the_scheduler_and_a_stop_cuts_a_run_mid_way() -> None:
    windows, gauges = _Windows(block=True), _Gauges()
    jobs = Scheduler()
    scheduled = _parts(windows, gauges).schedule(jobs, every_s=300.0)
    assert (scheduled.name, scheduled.interval_s) == (SCHEDULE_JOB, 300.0)
    async with asyncio.timeout(5):
        await jobs.start()
        await windows.entered.wait()
        await jobs.stop()
    assert windows.cancelled
    assert windows.passes == [1]
    assert gauges.refreshed == 0  # the pass was cut before its gauges
    assert not scheduled.running


async def test_a_failed_pass_is_tried_again_with_the_catch_up() -> None:
    @dataclass
    class _Failing(_Windows):
        async def run_due(self, windows: int = CATCH_UP) -> None:
            self.passes.append(windows)
            if len(self.passes) == 1:
                raise RuntimeError("the database is away")

    windows, gauges = _Failing(), _Gauges()
    job = ScheduledRuns(windows, gauges)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):  # the scheduler logs it and waits before the next pass
        await job.tick()
    await job.tick()
    assert windows.passes == [1, CATCH_UP]
    assert gauges.refreshed == 1
