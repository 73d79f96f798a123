"""The engine loop: stand for election, and while leading, tick: drive open envelopes, then build new ones.

Leadership is re-checked before every tick on the session that holds the lock; a leader that lost it stops at
once and, before standing again, leaves the others `stand_down_s` to take over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_payouts.adapters.stellar.options import StellarOptions

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
        wake: asyncio.Event,
    ) -> None:
        self.o = options
        self.leadership = leadership
        self.driver = driver
        self.builder = builder
        self._db = db
        self.wake = wake
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stand_down_until = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name=f"stellar-engine-{self.o.name}")

    async def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.leadership.drop()

    async def run(self) -> None:
        """Tick while there is work; once ticks find none, pause `tick_s`, doubling up to `idle_max_s` (an idle
        leader costs a few queries a second, not sixty). A `wake` (a payout created, a signature back) ends any
        pause and restarts the doubling."""
        loop = asyncio.get_running_loop()
        pause = self.o.tick_s
        while not self._stop.is_set():
            busy = False
            try:
                if await self.lead(loop.time()):
                    busy = await self.tick()
            except Exception:
                log.exception("stellar engine pass failed; retrying")
                await self.leadership.drop()
                await asyncio.sleep(RETRY_S)
            if busy:
                pause = self.o.tick_s
                continue
            woken = await self._pause(pause if self.leadership.leads else STANDBY_S)
            pause = self.o.tick_s if woken else min(pause * 2, max(self.o.idle_max_s, self.o.tick_s))

    async def _pause(self, seconds: float) -> bool:
        """Wait up to `seconds`; True when `wake` ended the wait."""
        woken = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
            woken = True
        self.wake.clear()
        return woken

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


__all__ = ["STANDBY_S", "STAND_DOWN_S", "StellarEngine"]
