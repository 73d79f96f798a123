"""The bench's load: an open loop at a fixed rate, the watcher of output events, ratios to pgbench (unit tier: the
event loop's clock, no socket)."""

from __future__ import annotations

import asyncio
import time

import pytest

from prizeflow_contracts.envelope import HEADER_ID, HEADER_TYPE
from prizeflow_contracts.events.rewards import RewardAllocated
from prizeflow_testkit.bench import EventWatcher, QueueBound, open_loop, per_pgbench


async def test_an_open_loop_keeps_its_schedule_whatever_each_send_waits_for() -> None:
    dues: list[float] = []
    answered: list[float] = []

    async def send(i: int, due: float) -> None:
        dues.append(due)
        # The answer comes 50 ms later, on its own: the next item does not wait for it.
        asyncio.get_running_loop().call_later(0.05, answered.append, time.monotonic())

    paced = await open_loop(40, 400, send)
    assert paced.sent == 40
    assert [round(d - dues[0], 6) for d in dues] == [round(i / 400, 6) for i in range(40)]
    assert paced.held_back_s == 0
    assert paced.seconds < 0.1 + 0.05  # ~0.1 s of schedule, not 40 x 50 ms
    await asyncio.sleep(0.06)
    assert len(answered) == 40
    summary = paced.summary()
    assert summary["target_per_s"] == 400
    assert summary["sent"] == 40
    assert {"offered_per_s", "send_late_ms_p50", "send_late_ms_p99", "held_back_s"} <= set(summary)


async def test_sending_stops_after_its_seconds_whatever_was_encoded_ahead() -> None:
    async def send(i: int, due: float) -> None:
        return None

    paced = await open_loop(100_000, 1000, send, seconds=0.1)
    assert 50 <= paced.sent <= 110
    assert paced.offered_per_s == pytest.approx(1000, rel=0.3)


async def test_a_platform_too_far_behind_holds_the_schedule_back_by_as_long() -> None:
    sent: list[float] = []
    done = 0

    async def send(i: int, due: float) -> None:
        sent.append(due)

    async def complete_later() -> None:
        nonlocal done
        await asyncio.sleep(0.15)
        done = 10**6  # the platform caught up at once

    finishing = asyncio.create_task(complete_later())
    paced = await open_loop(20, 1000, send, behind=lambda: len(sent) - done > 5)
    await finishing
    assert paced.sent == 20
    assert paced.held_back_s >= 0.1
    # Six went out (the sixth put the backlog over five), then the schedule waited and moved on by as long.
    gap = sent[6] - sent[5]
    assert gap >= 0.1
    assert sent[7] - sent[6] == pytest.approx(0.001, abs=1e-6)


async def test_a_watcher_counts_a_key_done_once_its_distinct_events_arrived() -> None:
    watcher = EventWatcher("127.0.0.1:1", "t", RewardAllocated, per_key=3)  # never started: no socket
    kind = (HEADER_TYPE, RewardAllocated.event_type().encode())
    for n, event_id in enumerate((b"a", b"b", b"b", b"c")):  # "b" published twice by a relay retry
        watcher._record(b"round-1", [kind, (HEADER_ID, event_id)], now=float(n))
        assert ("round-1" in watcher.done_at) is (n == 3)
    assert watcher.done_at == {"round-1": 3.0}
    assert watcher.first_seen == {"round-1": 0.0}
    assert watcher.records == 4
    assert watcher.done == 1
    await watcher.stop()


def test_figures_are_put_against_pgbench_so_that_a_faster_machine_reads_the_same() -> None:
    # A machine twice as fast: pgbench 2,000 -> 4,000 tps, the platform's rate doubles, its times halve.
    assert per_pgbench(400, "/s", 2000) == per_pgbench(800, "/s", 4000) == 0.2
    assert per_pgbench(50, "ms", 2000) == per_pgbench(25, "ms", 4000) == 100
    assert per_pgbench(2400, "µs", 2000) == per_pgbench(1200, "µs", 4000) == 4.8
    assert per_pgbench(0.95, "count", 2000) is None  # transactions per claim: the same on any machine
    assert per_pgbench(60, "s", 2000) is None
    assert per_pgbench(400, "/s", 0) is None


def test_the_queue_is_bounded_by_seconds_of_what_the_platform_completes_not_of_what_is_offered() -> None:
    def platform(done_at_5s: int) -> bool:
        """Offered 1,000/s (1,001 sent), completing 100/s, then `done_at_5s` done at 5 s: more than 5 s behind?"""
        bound = QueueBound(seconds=5, per_s=1000)
        due = [i / 1000 for i in range(1001)]
        for t, done in ((1, 0), (2, 100), (3, 200), (4, 300), (5, done_at_5s)):
            waiting = bound.behind(due, done.__gt__, done, float(t))
        return waiting

    # The last two seconds completed 100/s: 5 s of it (500) may wait, whatever was offered.
    assert platform(400)  # 601 waiting
    assert not platform(520)  # 481 waiting (and the rate measured a little higher)


def test_before_anything_completes_a_second_of_the_offered_rate_may_wait() -> None:
    bound = QueueBound(seconds=5, per_s=1000)
    due = [i / 1000 for i in range(1000)]
    assert not bound.behind(due, lambda i: False, 0, 1.0)
    assert bound.behind([*due, 1.0], lambda i: False, 0, 1.0)


def test_an_item_due_longer_ago_than_the_bound_holds_everything() -> None:
    bound = QueueBound(seconds=5, per_s=1000)
    assert bound.behind([0.0, 1.0], lambda i: i == 1, 1, 5.5)
    assert not QueueBound(seconds=5, per_s=1000).behind([0.0, 1.0], lambda i: True, 2, 5.5)
