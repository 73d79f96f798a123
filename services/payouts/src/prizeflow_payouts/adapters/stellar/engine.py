"""The engine: stand for election, and while leading, tick: drive open envelopes, then build new ones.

Leadership is re-checked before every tick on the session that holds the lock; a leader that lost it stops at
once and, before standing again, leaves the others `stand_down_s` to take over. The passes are a job on the
process's one scheduler (`schedule(jobs)`, called by the bootstrap as for every rail): `EnginePasses.tick` is one
pass and the pace it asks for; it stands by until the provider has started, and again once it stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_payouts.adapters.stellar.options import StellarOptions
from prizeflow_runtime.jobs import Scheduled, Scheduler, Tick

log = logging.getLogger(__name__)

STANDBY_S = 1.0  # how often a follower asks for the lock
STAND_DOWN_S = 2.0  # a leader that lost its lock waits this long before standing again
RETRY_S = 0.5


class Leadership(Protocol):
    @property
    def leads(self) -> bool: ...

    async def try_lead(self, db: AsyncEngine) -> bool: ...

    async def still_leads(self) -> bool: ...

    async def drop(self) -> None: ...


class Work(Protocol):
    async def drive_open(self) -> bool: ...

    async def next_due_in(self) -> float | None: ...


class Builder(Protocol):
    async def build(self) -> bool: ...


class StellarEngine:
    def __init__(
        self,
        options: StellarOptions,
        *,
        leadership: Leadership,
        driver: Work,
        builder: Builder,
        db: Callable[[], Awaitable[AsyncEngine]],
    ) -> None:
        self.o = options
        self.leadership = leadership
        self.driver = driver
        self.builder = builder
        self._db = db
        self._stand_down_until = 0.0
        self.passes = EnginePasses(self)
        self._scheduled: Scheduled | None = None
        self.running = False  # between `start()` and `stop()`: the passes stand by otherwise

    def schedule(self, jobs: Scheduler) -> None:
        """The engine's passes on the process's scheduler. Cancelled at its stop, mid-pass if need be: what a pass
        did is in the database, and the next leader resumes."""
        if self._scheduled is None:
            self._scheduled = jobs.every(
                self.o.tick_s, self.passes, name=f"stellar-engine-{self.o.name}", cancel_on_stop=True
            )

    def start(self) -> None:
        self.passes.restart()
        self.running = True
        self.wake()

    def wake(self) -> None:
        """Work arrived (a payout created, a signature back): end any pause and restart the doubling."""
        self.passes.woken = True
        if self._scheduled is not None:
            self._scheduled.wake()

    async def stop(self) -> None:
        """After the scheduler stopped the passes (the bootstrap's shutdown order): leadership given up."""
        self.running = False
        await self.leadership.drop()

    async def lead(self, now: float) -> bool:
        """True if this process leads now: held and re-checked, or just taken."""
        if self.leadership.leads:
            if await self.leadership.still_leads():
                return True
            self._stand_down_until = now + STAND_DOWN_S
            return False
        if now < self._stand_down_until:
            return False
        return await self.leadership.try_lead(await self._db())

    async def tick(self) -> bool:
        """One pass: drive open envelopes, then build new ones on free lanes. True if there was work."""
        driven = await self.driver.drive_open()
        return await self.builder.build() or driven


class EnginePasses:
    """The engine's job. While ticks find work it ticks again at once; once they find none, it pauses `tick_s`,
    doubling up to `idle_max_s`, and never past its next timed work (an open envelope's check, a queued payout's
    wait): an idle leader costs a few queries every `idle_max_s`. A follower asks again every `STANDBY_S`. A wake
    (a payout queued or a signature back in this process) ends any pause and restarts the doubling; `idle_max_s`
    bounds what no wake announces (a payout queued on another replica). A failed pass drops leadership and waits
    `RETRY_S` before standing by."""

    def __init__(self, engine: StellarEngine) -> None:
        self.engine = engine
        self.woken = False  # a wake since the last pass began
        self.pause = engine.o.tick_s
        self._paused = False  # the last pass found nothing: the wait since then was a pause

    def restart(self) -> None:
        """As a fresh start: the pause from `tick_s`."""
        self.woken, self._paused, self.pause = False, False, self.engine.o.tick_s

    async def tick(self) -> Tick:
        engine, o = self.engine, self.engine.o
        woken, self.woken = self.woken, False
        if self._paused:
            self._paused = False
            self.pause = o.tick_s if woken else min(self.pause * 2, max(o.idle_max_s, o.tick_s))
        if not engine.running:
            return STANDBY_S
        busy = False
        try:
            if await engine.lead(asyncio.get_running_loop().time()):
                busy = await engine.tick()
        except Exception:
            log.exception("stellar engine pass failed; retrying")
            await engine.leadership.drop()
            await asyncio.sleep(RETRY_S)
        if busy:
            self.pause = o.tick_s
            return 0.0
        self._paused = True
        if not engine.leadership.leads:
            return STANDBY_S
        try:
            due_in = await engine.driver.next_due_in()
        except Exception:
            log.warning("stellar engine: the next due time is unknown; pausing as idle", exc_info=True)
            due_in = None
        return self.pause if due_in is None else min(self.pause, max(due_in, o.tick_s))


__all__ = ["RETRY_S", "STANDBY_S", "STAND_DOWN_S", "EnginePasses", "StellarEngine"]
