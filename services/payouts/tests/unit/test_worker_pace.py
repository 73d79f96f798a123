"""The worker's pace: no pause while batches are full, the base interval after work, and an idle worker backing
off (doubling) to `idle_max_s` — woken at once by a request or an approval, which restarts the doubling."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from prizeflow_payouts.application import worker as worker_module
from prizeflow_payouts.application.worker import PayoutWorker, WorkerConfig, WorkerResult


def _worker(results: Iterator[int], config: WorkerConfig, stop: asyncio.Event) -> PayoutWorker:
    w = PayoutWorker(transactions=None, registry=None, builder=None, config=config)  # type: ignore[arg-type]

    async def run_once() -> WorkerResult:
        try:
            return WorkerResult(processed=next(results))
        except StopIteration:
            stop.set()
            return WorkerResult()

    w.run_once = run_once  # type: ignore[method-assign]
    return w


def _pauses(
    monkeypatch: pytest.MonkeyPatch, processed: list[int], woken_at: set[int], config: WorkerConfig
) -> list[float]:
    pauses: list[float] = []

    async def fake_wait(stop: asyncio.Event, wake: Any, seconds: float) -> bool:
        pauses.append(seconds)
        return len(pauses) - 1 in woken_at

    monkeypatch.setattr(worker_module, "_wait", fake_wait)

    async def run() -> None:
        stop = asyncio.Event()
        await _worker(iter(processed), config, stop).run(stop, asyncio.Event())

    asyncio.run(run())
    return pauses


def test_an_idle_worker_backs_off_to_its_maximum_and_work_brings_back_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=1.0)
    pauses = _pauses(monkeypatch, [0, 0, 0, 0, 0, 0, 3, 0, 10, 10, 0], set(), config)
    # (the last pause is the pass that finds the script over and stops)
    # six idle passes: doubling to the maximum; work (3): the interval; idle: the interval, then doubling again;
    # two full batches: no pause at all, and the doubling starts over
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1, 0.1, 0.1, 0.2]


def test_a_wake_restarts_the_doubling(monkeypatch: pytest.MonkeyPatch) -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=1.0)
    pauses = _pauses(monkeypatch, [0, 0, 0, 0, 0, 0], {3}, config)
    assert pauses == [0.1, 0.2, 0.4, 0.8, 0.1, 0.2, 0.4]


def test_a_maximum_below_the_interval_keeps_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    config = WorkerConfig(batch_size=10, interval_s=0.1, idle_max_s=0.05)
    assert _pauses(monkeypatch, [0, 0], set(), config) == [0.1, 0.1, 0.1]
