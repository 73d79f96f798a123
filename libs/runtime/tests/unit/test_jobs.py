"""The scheduler: the pace follows what a tick says, a wake-up is never lost, failures wait, leadership gates,
shutdown lets a pass finish (or cancels a resumable one), in reverse order of registration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from prizeflow_runtime.jobs import Retry, Scheduled, Scheduler, Tick


@dataclass
class Recorded:
    """A job that answers what it is told and records when it ran (loop time)."""

    answers: Callable[[int], Tick]
    at: list[float] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def tick(self) -> Tick:
        self.at.append(asyncio.get_running_loop().time())
        if self.gate is not None:
            await self.gate.wait()
        return self.answers(len(self.at))


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def recorded_waits(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[float]]:
    """The waits each job asked for, in order, without waiting them (the pace is the scheduler's decision)."""
    waits: dict[str, list[float]] = {}

    async def no_wait(self: Scheduled, seconds: float) -> None:
        waits.setdefault(self.name, []).append(round(seconds, 6))
        await asyncio.sleep(0)

    monkeypatch.setattr(Scheduled, "_sleep", no_wait)
    return waits


async def test_an_idle_job_backs_off_to_its_ceiling_and_a_busy_one_keeps_its_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits = recorded_waits(monkeypatch)
    jobs = Scheduler()
    idle = Recorded(lambda n: False)
    busy = Recorded(lambda n: n % 3 != 0)  # finds work twice, then none
    jobs.every(0.02, idle, name="idle", idle_max_s=0.08)
    jobs.every(0.02, busy, name="busy", idle_max_s=0.08)
    await jobs.start()
    await until(lambda: len(idle.at) >= 6 and len(busy.at) >= 6)
    await jobs.stop()
    assert waits["idle"][:6] == [0.02, 0.04, 0.08, 0.08, 0.08, 0.08]
    assert waits["busy"][:6] == [0.02, 0.02, 0.02, 0.02, 0.02, 0.02]  # work resets the back-off each time


async def test_a_number_sets_the_next_wait_and_resets_the_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = recorded_waits(monkeypatch)
    jobs = Scheduler()
    job = Recorded(lambda n: [False, False, 0, 2.5, False][n - 1] if n <= 5 else False)
    jobs.every(0.5, job, name="batches", idle_max_s=4.0)
    await jobs.start()
    await until(lambda: len(job.at) >= 5)
    await jobs.stop()
    assert waits["batches"][:5] == [0.5, 1.0, 0.0, 2.5, 0.5]


async def test_a_pass_that_runs_again_at_once_waits_for_nothing() -> None:
    jobs = Scheduler()
    job = Recorded(lambda n: 0 if n < 5 else 60.0)
    jobs.every(10.0, job, name="batches")
    await jobs.start()
    await until(lambda: len(job.at) >= 5)  # not 10 s apart
    await asyncio.sleep(0.05)
    assert len(job.at) == 5  # then 60 s: it waits
    await jobs.stop()


async def test_a_wake_up_during_a_pass_is_kept_for_the_next_wait() -> None:
    jobs = Scheduler()
    gate = asyncio.Event()
    job = Recorded(lambda n: False, gate=gate)
    scheduled = jobs.every(30.0, job, name="worker")
    await jobs.start()
    await until(lambda: len(job.at) == 1)
    scheduled.wake()  # arrives while the first pass is still running
    gate.set()
    await until(lambda: len(job.at) == 2, timeout=2.0)  # not 30 s later
    await jobs.stop()


async def test_a_failing_pass_is_logged_and_the_next_waits_at_least_half_a_second(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waits = recorded_waits(monkeypatch)
    jobs = Scheduler()

    def answers(n: int) -> Tick:
        if n <= 2:
            raise RuntimeError("the database is down")
        return True

    job = Recorded(answers)
    jobs.every(0.01, job, name="flaky")
    await jobs.start()
    await until(lambda: len(job.at) >= 4)
    await jobs.stop()
    first, second, after = waits["flaky"][0], waits["flaky"][1], waits["flaky"][2]
    assert 0.5 <= first <= 1.0  # jittered from a 1 s base: never hammered
    assert 1.0 <= second <= 2.0  # growing with each failure
    assert after == 0.01  # a pass that succeeds resets it
    assert "flaky: a pass failed" in caplog.text


@dataclass
class Lease:
    held: bool
    asked: int = 0
    resigned: bool = False

    async def lead(self) -> bool:
        self.asked += 1
        return self.held

    async def resign(self) -> None:
        self.resigned = True


async def test_only_the_leader_ticks_and_a_stop_resigns() -> None:
    jobs = Scheduler()
    lease = Lease(held=False)
    job = Recorded(lambda n: True)
    jobs.every(0.01, job, name="engine", leader=lease, standby_s=0.02)
    await jobs.start()
    await until(lambda: lease.asked >= 3)
    assert job.at == []
    lease.held = True
    await until(lambda: len(job.at) >= 2)
    await jobs.stop()
    assert lease.resigned


async def test_stop_lets_a_pass_finish_unless_the_job_is_resumable() -> None:
    jobs = Scheduler()
    order: list[str] = []
    gate = asyncio.Event()

    @dataclass
    class Pass:
        name: str

        async def tick(self) -> Tick:
            order.append(f"{self.name} started")
            try:
                await gate.wait()
            except asyncio.CancelledError:
                order.append(f"{self.name} cancelled")
                raise
            order.append(f"{self.name} finished")
            return False

    jobs.every(60.0, Pass("worker"), name="worker")
    jobs.every(60.0, Pass("recon"), name="recon", cancel_on_stop=True)
    await jobs.start()
    await until(lambda: len(order) == 2)
    stopping = asyncio.create_task(jobs.stop())
    await until(lambda: "recon cancelled" in order)  # the last registered stops first, cut mid-run
    assert "worker finished" not in order
    gate.set()
    await stopping
    assert order[-1] == "worker finished"


async def test_a_retry_waits_its_whole_time_whatever_wakes_the_job() -> None:
    jobs = Scheduler()
    gate = asyncio.Event()
    job = Recorded(lambda n: Retry(0.3) if n == 1 else 60.0, gate=gate)
    scheduled = jobs.every(0.01, job, name="relay")
    await jobs.start()
    await until(lambda: len(job.at) == 1)
    scheduled.wake()  # during the failing pass: dropped, as those during its back-off
    gate.set()
    for _ in range(20):
        await asyncio.sleep(0.005)
        scheduled.wake()
    await until(lambda: len(job.at) == 2)
    assert job.at[1] - job.at[0] >= 0.3  # no wake-up shortened the back-off
    woken = asyncio.get_running_loop().time()
    scheduled.wake()  # after a pass that did not fail, a wake-up ends the wait (60 s) as before
    await until(lambda: len(job.at) == 3, timeout=2.0)
    assert job.at[2] - woken < 60.0
    await jobs.stop()


async def test_a_stop_ends_a_retry_at_once() -> None:
    jobs = Scheduler()
    job = Recorded(lambda n: Retry(60.0))
    scheduled = jobs.every(0.01, job, name="relay")
    await jobs.start()
    await until(lambda: len(job.at) == 1)
    ended = asyncio.create_task(scheduled.finished())
    async with asyncio.timeout(5.0):  # not the 60 s of the back-off
        await jobs.stop()
        await ended
    assert len(job.at) == 1


async def test_a_stop_waits_its_grace_then_cancels_and_without_grace_waits_for_the_pass() -> None:
    jobs = Scheduler()
    order: list[str] = []
    gate = asyncio.Event()

    @dataclass
    class Pass:
        name: str

        async def tick(self) -> Tick:
            order.append(f"{self.name} started")
            try:
                await gate.wait()
            except asyncio.CancelledError:
                order.append(f"{self.name} cancelled")
                raise
            order.append(f"{self.name} finished")
            return False

    jobs.every(60.0, Pass("relay"), name="relay", stop_grace_s=None)
    jobs.every(60.0, Pass("short"), name="short", stop_grace_s=0.05)
    await jobs.start()
    await until(lambda: len(order) == 2)
    stopping = asyncio.create_task(jobs.stop())
    await until(lambda: "short cancelled" in order)  # past its grace
    assert "relay finished" not in order
    assert "relay cancelled" not in order
    gate.set()
    await stopping
    assert order[-1] == "relay finished"


def test_a_name_is_scheduled_once_and_the_pace_is_sane() -> None:
    jobs = Scheduler()
    job = Recorded(lambda n: True)
    jobs.every(1.0, job, name="one")
    with pytest.raises(ValueError, match="scheduled already"):
        jobs.every(1.0, job, name="one")
    with pytest.raises(ValueError, match="idle max"):
        jobs.every(1.0, job, name="two", idle_max_s=0.5)
