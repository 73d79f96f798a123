"""Jobs, not loops: the one place a Prizeflow process runs something periodically.

A job is anything with `async def tick(self) -> Tick`: one pass of its work, nothing about time. The scheduler owns
the loop, the pace, the wake-ups, the leadership and the shutdown:

    jobs = Scheduler()
    worker = jobs.every(0.1, SendDuePayouts(...), name="payout-worker", idle_max_s=1.0)
    create = CreatePayouts(..., on_due=worker.wake)   # a use case asks for a pass; it never holds an Event
    await jobs.start(); ...; await jobs.stop()        # stopped in reverse order of registration

What a tick returns sets the pace of the next one:
- `True` (it found work): again after `interval_s`;
- `False` (nothing to do): the wait doubles from `interval_s` up to `idle_max_s` (an idle process costs nothing);
- a number: again after exactly that many seconds (0: at once, e.g. a full batch; 2: a list still missing);
- `Retry(seconds)`: the job's own back-off after a failure it handled: again after exactly that long, and no
  wake-up shortens it (one that arrives during the pass or the wait is dropped: work being announced does not bring
  a broken dependency back); only a stop ends it early.
`wake()` ends the current wait at once and restarts the idle doubling from `interval_s` (work is expected), and a
wake-up that arrives during a tick is kept for the next wait (never lost). A tick that raises is logged with its
traceback and the next one waits at least a second, growing with further failures (`Backoff`), so a broken
dependency is not hammered.

`leader=` makes a job run on one replica at a time: before each tick the scheduler asks `leader.lead()` (acquire, or
confirm it is still held) and, while another replica leads, asks again every `standby_s`; at stop it calls
`leader.resign()`. Leadership is the adapter's business (an advisory lock, a lease row); the job never sees it.

Stopping lets a tick in progress finish (its work is in a transaction that should end), unless the job was
registered with `cancel_on_stop=True` (a resumable run that may be cut mid-way). This module is pure (asyncio only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from prizeflow_runtime.retry import Backoff

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    """What a tick returns after a failure it handled itself: wait `after_s`, deaf to wake-ups (see the module)."""

    after_s: float


Tick = bool | float | Retry


class Job(Protocol):
    async def tick(self) -> Tick:
        """One pass: True when it found work, False when there was none, or the seconds until the next pass."""
        ...


class Leadership(Protocol):
    async def lead(self) -> bool:
        """Acquire leadership, or confirm it is still held: True while this process may run the job."""
        ...

    async def resign(self) -> None: ...


Wake = Callable[[], None]


@dataclass(eq=False)
class Scheduled:
    """One job on the scheduler: its pace, its wake-up, its task."""

    job: Job
    name: str
    interval_s: float
    idle_max_s: float
    leader: Leadership | None = None
    standby_s: float = 1.0
    cancel_on_stop: bool = False
    # How long a stop waits for a tick in progress before cancelling it all the same (None: as long as it takes).
    stop_grace_s: float | None = 30.0
    ticks: int = field(default=0, init=False)
    _woken: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _stopping: bool = field(default=False, init=False)
    _deaf: bool = field(default=False, init=False)  # the coming wait is a `Retry`: wake-ups do not end it
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def wake(self) -> None:
        """Run a pass now (or right after the one in progress)."""
        self._woken.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def finished(self) -> None:
        """Return once the job's loop has ended (a stop); cancelling the caller cancels the job's loop too."""
        if self._task is not None:
            await self._task

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._woken.set()
        if self.cancel_on_stop:
            task.cancel()
        done, _ = await asyncio.wait({task}, timeout=self.stop_grace_s)
        if not done:
            log.warning("%s: a pass outlasted the stop grace of %.0fs; cancelled", self.name, self.stop_grace_s)
            task.cancel()
            await asyncio.wait({task})
        if self.leader is not None:
            try:
                await self.leader.resign()
            except Exception:
                log.warning("%s: resigning leadership failed (it lapses by itself)", self.name, exc_info=True)

    async def _run(self) -> None:
        idle = self.interval_s
        failures = Backoff(base=max(1.0, self.interval_s), cap=max(30.0, self.idle_max_s))
        while not self._stopping:
            wait, idle = await self._pass(idle, failures)
            await self._sleep(wait)

    async def _pass(self, idle: float, failures: Backoff) -> tuple[float, float]:
        """One pass: the wait before the next, and the idle wait to remember."""
        if self._woken.is_set():
            idle = self.interval_s  # woken: whatever it finds, an idle wait starts over from the interval
        self._woken.clear()
        try:
            if self.leader is not None and not await self.leader.lead():
                return self.standby_s, idle
            outcome = await self.job.tick()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: a pass failed; the next one waits", self.name)
            return failures.next(), idle
        finally:
            self.ticks += 1
        failures.reset()
        if isinstance(outcome, Retry):
            self._deaf = True
            return max(0.0, outcome.after_s), idle
        if outcome is True:
            return self.interval_s, self.interval_s
        if outcome is False:
            return idle, min(self.idle_max_s, max(idle * 2, self.interval_s))
        return max(0.0, float(outcome)), self.interval_s

    async def _sleep(self, seconds: float) -> None:
        if self._deaf:
            self._deaf = False
            await self._hold(seconds)
            return
        if self._stopping or self._woken.is_set() or seconds <= 0:
            await asyncio.sleep(0)  # a full batch or a wake-up: let the others run once, then go on
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout=seconds)

    async def _hold(self, seconds: float) -> None:
        """Wait `seconds` whatever wakes the job (a `Retry`); a stop ends the wait. Wake-ups meanwhile are dropped."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0 and not self._stopping:
            self._woken.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout=left)
        if not self._stopping:
            self._woken.clear()


class Scheduler:
    """Every periodic job of a process, started together and stopped in reverse order of registration."""

    def __init__(self) -> None:
        self.jobs: list[Scheduled] = []
        self.started = False

    def every(
        self,
        interval_s: float,
        job: Job,
        *,
        name: str,
        idle_max_s: float | None = None,
        leader: Leadership | None = None,
        standby_s: float = 1.0,
        cancel_on_stop: bool = False,
        stop_grace_s: float | None = 30.0,
    ) -> Scheduled:
        """Register `job` to tick every `interval_s` (backing off to `idle_max_s` while it finds nothing to do).
        Registered after `start()`, it starts at once."""
        if interval_s < 0 or (idle_max_s is not None and idle_max_s < interval_s):
            raise ValueError(f"{name}: interval {interval_s}s, idle max {idle_max_s}s")
        if any(s.name == name for s in self.jobs):
            raise ValueError(f"a job named {name!r} is scheduled already")
        scheduled = Scheduled(
            job,
            name,
            interval_s,
            idle_max_s if idle_max_s is not None else interval_s,
            leader=leader,
            standby_s=standby_s,
            cancel_on_stop=cancel_on_stop,
            stop_grace_s=stop_grace_s,
        )
        self.jobs.append(scheduled)
        if self.started:
            scheduled.start()
        return scheduled

    async def start(self) -> None:
        self.started = True
        for scheduled in self.jobs:
            scheduled.start()

    async def stop(self) -> None:
        """Each job in reverse order of registration: what was started last (and may use what came before) first."""
        self.started = False
        for scheduled in reversed(self.jobs):
            await scheduled.stop()


__all__ = ["Job", "Leadership", "Retry", "Scheduled", "Scheduler", "Tick", "Wake"]
