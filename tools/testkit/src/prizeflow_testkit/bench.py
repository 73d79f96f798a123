"""What the benchmark scripts share: a throwaway database and topic suffix, a producer and a paced sender for the
load, a watcher that sees when each key's output event arrives on Kafka, waits on a count in PostgreSQL,
percentiles, and the JSON result document.

Each `*/bench/bench_*.py` stays one linear script (set up, drive, measure); what is here is what they all do
the same way.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from prizeflow_contracts.envelope import HEADER_ID, HEADER_TYPE, Envelope, EventPayload
from prizeflow_devstack import owners
from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.topics import delete_topics_with_suffix
from prizeflow_testkit.kafka import provision_test_topics

T = TypeVar("T")
Encoded = tuple[bytes, bytes, list[tuple[str, bytes]]]  # value, key, headers: a record as a publisher sends it


# --- the result document -------------------------------------------------------------------------------------


def host() -> dict[str, Any]:
    """The machine the figures were taken on: cores and load average (other work skews them)."""
    return {"cores": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile `q` (0..1) of an already sorted list."""
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))]


def latency_ms(name: str, sorted_ms: list[float], *, maximum: bool = True) -> dict[str, float]:
    """`{name}_ms_p50`, `{name}_ms_p99` (and `{name}_ms_max`) of an already sorted list, to 0.1 ms."""
    figures = {
        f"{name}_ms_p50": round(percentile(sorted_ms, 0.5), 1),
        f"{name}_ms_p99": round(percentile(sorted_ms, 0.99), 1),
    }
    if maximum:
        figures[f"{name}_ms_max"] = round(sorted_ms[-1], 1)
    return figures


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The 50th and 99th of `statistics.quantiles(n=100)` (0, 0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0, 0.0
    q = statistics.quantiles(values, n=100)
    return q[49], q[98]


_SECONDS_OF: dict[str, float] = {"s": 1.0, "ms": 1e-3, "µs": 1e-6}


def per_pgbench(value: float, unit: str, tps: float) -> float | None:
    """`value` against the same run's pgbench TPS, so that runs on machines of different speed compare: a rate
    (`/s`) divided by the TPS, a time (`ms`, `µs`; a CPU time per event, a latency) taken in seconds and multiplied
    by it. Both read the same on a machine twice as fast. None for a count (transactions per claim: the same on any
    machine) and for a run's own length (`s`: how long a phase was held is no speed)."""
    if tps <= 0:
        return None
    if unit == "/s":
        return round(value / tps, 4)
    if unit in {"ms", "µs"}:
        return round(value * _SECONDS_OF[unit] * tps, 4)
    return None


def print_result(doc: dict[str, Any], out: Path | str | None = None, *, indent: int | None = 2) -> None:
    """The benchmark's JSON document on stdout (the last one printed is what `prizeflow-dev bench` collects),
    and into `out` if given."""
    text = json.dumps(doc, indent=indent, default=dict)
    print(text)
    if out is not None:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


# --- where the run happens -----------------------------------------------------------------------------------


@asynccontextmanager
async def bench_database(infra: Infra, prefix: str, alembic_ini: str | Path | None = None) -> AsyncIterator[str]:
    """A fresh database `<prefix>_<random>` on the devstack's PostgreSQL (migrated to head with `alembic_ini`),
    dropped afterwards; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    owners.claim("database", name)  # killed, the next session or bench drops it
    url = await create_database(infra, name)
    try:
        if alembic_ini is not None:
            await upgrade_to_head(str(alembic_ini), url)
        yield url
    finally:
        await drop_database(infra, name)
        owners.release("database", name)


@asynccontextmanager
async def bench_topics(bootstrap: str) -> AsyncIterator[str]:
    """Every contract topic under a fresh suffix, as the provisioning Job creates them (services only verify);
    deleted afterwards. Yields the suffix."""
    suffix = f".bench-{uuid.uuid4().hex[:8]}"
    owners.claim("topics", suffix)
    try:
        await provision_test_topics(bootstrap, suffix)
        yield suffix
    finally:
        await delete_topics_with_suffix(bootstrap, suffix)
        owners.release("topics", suffix)


# --- load ----------------------------------------------------------------------------------------------------


def bench_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """The load's producer: Prizeflow's idempotent producer, batching a little longer (a game server's burst)."""
    return idempotent_producer(bootstrap, **{"linger_ms": 5, "max_batch_size": 512 * 1024, **overrides})


def encoded(envelopes: Iterable[Envelope[Any]]) -> list[Encoded]:
    """Envelopes as records, encoded ahead (so a timed phase measures the service, not the encoding)."""
    return [(e.encode(), e.key, e.headers()) for e in envelopes]


async def send_all(producer: AIOKafkaProducer, topic: str, records: Iterable[Envelope[Any] | Encoded]) -> None:
    """Every record handed to the producer at once, then every acknowledgement awaited."""
    futures = []
    for r in records:
        value, key, headers = r if isinstance(r, tuple) else (r.encode(), r.key, r.headers())
        futures.append(await producer.send(topic, value=value, key=key, headers=headers))
    await asyncio.gather(*futures)


async def paced(items: Sequence[T], per_s: float, *, tick: float = 0.02) -> AsyncIterator[list[T]]:
    """`items` in chunks, one chunk every `tick` seconds, `per_s` items a second (a steady offered load): the
    next chunk is due on the schedule from the first, however long the caller took with the last."""
    per_tick = max(1, round(per_s * tick))
    started = time.monotonic()
    for k, n in enumerate(range(0, len(items), per_tick)):
        yield list(items[n : n + per_tick])
        pause = started + (k + 1) * tick - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)


@dataclass
class OpenLoop:
    """What an open-loop sender did (`open_loop`): the load it offered against the one it was asked for.

    `held_back_s` is the time the schedule was held because the platform was too far behind: a phase held back
    measured the platform's saturated rate, not a rate it kept up with. `late_ms_*` is how long after its
    due time an item went out (a busy generator, or one waiting for a free connection)."""

    target_per_s: float
    sent: int
    started: float  # the clock when the first item was due
    seconds: float  # from then until the sender stopped: the last item sent, or `seconds` ran out (held or not)
    held_back_s: float
    late_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def offered_per_s(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lateness = sorted(self.late_ms)
        return {
            "target_per_s": round(self.target_per_s, 1),
            "offered_per_s": round(self.offered_per_s, 1),
            "sent": self.sent,
            "send_seconds": round(self.seconds, 2),
            "held_back_s": round(self.held_back_s, 2),
            **(latency_ms("send_late", lateness) if lateness else {}),
        }


async def open_loop(
    count: int,
    per_s: float,
    send: Callable[[int, float], Awaitable[None]],
    *,
    behind: Callable[[], bool] | None = None,
    seconds: float | None = None,
    tick: float = 0.002,
    clock: Callable[[], float] = time.monotonic,
) -> OpenLoop:
    """Items 0..count-1 handed to `send(i, due)` on a fixed schedule, `per_s` a second, whether or not earlier ones
    were answered (an open loop: what a crowd of players or game servers does), so a slow platform shows as a
    growing backlog and latency, not as a slower sender. `due` is when the item was due on `clock`: latency measured
    from it includes any delay of the sender's own.

    While `behind()` says the platform is too far behind (e.g. its oldest unfinished item waits longer than a bound),
    sending is held and the schedule moves on by as long (`held_back_s`): a platform slower than `per_s` is then
    measured at its own rate, behind a bounded queue, instead of the phase running for as long as an unbounded one
    takes to drain. With `seconds`, sending stops then, whatever is left (`count` is then an upper bound: what was
    encoded ahead).
    """
    started = last = clock()
    end = math.inf if seconds is None else started + seconds
    held_s = 0.0
    late: list[float] = []
    i = 0

    def held() -> bool:
        return behind is not None and behind()

    while i < count and (now := clock()) < end:
        if held():
            # Seconds behind: looking again 50 times a second is plenty, and costs the generator little.
            await asyncio.sleep(10 * tick)
            held_s += clock() - now
            continue
        while i < count and (due := started + held_s + i / per_s) <= now and last < end and not held():
            await send(i, due)
            last = clock()
            late.append((last - due) * 1000)
            i += 1
        if i < count:
            # Until the next item is due, but at least `tick`: at a high rate each wake sends what fell due since.
            await asyncio.sleep(max(started + held_s + i / per_s - clock(), tick))
    return OpenLoop(per_s, i, started, max(clock() - started, 1 / per_s), held_s, late)


class QueueBound:
    """When a fixed-rate phase must hold back: the platform's queue (sent, not done) is over `seconds` of the rate it
    has been completing lately (the last two seconds; a second of the offered rate until it completes anything), or
    its oldest unfinished item was due more than `seconds` ago. Offered more than it does, the platform then works
    behind a queue of about `seconds`, and the phase drains in about as long once sending stops."""

    def __init__(self, seconds: float, per_s: float) -> None:
        self.seconds, self.per_s = seconds, per_s
        self.oldest = 0  # the first item sent not done yet (items finish out of order: it waits for this one)
        self.samples: collections.deque[tuple[float, int]] = collections.deque()  # (when, done so far)

    def behind(self, due_at: Sequence[float], is_done: Callable[[int], bool], done: int, now: float) -> bool:
        while self.oldest < len(due_at) and is_done(self.oldest):
            self.oldest += 1
        if self.oldest < len(due_at) and now - due_at[self.oldest] > self.seconds:
            return True
        if not self.samples or now - self.samples[-1][0] >= 0.25:
            self.samples.append((now, done))
        while len(self.samples) > 1 and now - self.samples[0][0] > 2.0:
            self.samples.popleft()
        first_at, first_done = self.samples[0]
        rate = (done - first_done) / (now - first_at) if now - first_at >= 1.0 else 0.0
        limit = rate * self.seconds if rate > 0 else self.per_s * min(1.0, self.seconds)
        return len(due_at) - done > limit


# --- measuring -----------------------------------------------------------------------------------------------


class EventWatcher:
    """Reads an output topic like any downstream consumer: when did each key's first `event` arrive.

    Only the `ce_type` and `ce_id` headers and the key are looked at, so the watcher costs little CPU next to
    the service it measures; keys still awaited are struck off as they arrive (no rescans). `from_end`: only what
    is published after `start()` (a long run's earlier phases are not read again); `per_key`: a key is done once
    that many distinct events of its arrived (`done_at`: eight RewardAllocated of a round of eight players)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        event: type[EventPayload],
        *,
        clock: Callable[[], float] = time.monotonic,
        from_end: bool = False,
        per_key: int = 1,
    ) -> None:
        self.consumer = AIOKafkaConsumer(
            topic,  # no group: every partition, from the beginning (or the end)
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="latest" if from_end else "earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=20,
        )
        self.topic = topic
        self.from_end = from_end
        self.per_key = per_key
        self.event_name = event.event_type()
        self._type = self.event_name.encode()
        self.clock = clock
        self.first_seen: dict[str, float] = {}  # key -> clock() when its first event arrived
        self.done_at: dict[str, float] = {}  # key -> clock() when its `per_key`-th distinct event arrived
        self.records = 0  # such records received (a relay retry may publish one twice)
        self.event_ids: set[bytes] = set()  # distinct event ids: exactly one per key
        self._seen: dict[str, int] = {}  # key -> distinct events so far (with per_key > 1)
        self._waiting: set[str] = set()  # keys `wait` still waits for
        self._arrived = asyncio.Event()  # set when the last of them arrived
        self._task: asyncio.Task[None] | None = None

    @property
    def done(self) -> int:
        """Keys with all their events."""
        return len(self.done_at)

    async def start(self) -> None:
        await self.consumer.start()
        if self.from_end:
            # Resolve every partition's position now: "latest" taken at the first fetch would skip what is
            # published in between.
            for tp in self.consumer.assignment():
                await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            now = self.clock()
            for records in batches.values():
                for r in records:
                    headers = r.headers or ()
                    if (HEADER_TYPE, self._type) in headers:
                        self._record(r.key, headers, now)
            if not self._waiting:
                self._arrived.set()

    def _record(self, raw_key: bytes | None, headers: Sequence[tuple[str, bytes]], now: float) -> None:
        self.records += 1
        ids = [v for k, v in headers if k == HEADER_ID]
        new = any(i not in self.event_ids for i in ids)
        self.event_ids.update(ids)
        key = (raw_key or b"").decode()
        if key not in self.first_seen:
            self.first_seen[key] = now
        if self.per_key == 1:
            if key not in self.done_at:
                self.done_at[key] = now
                self._waiting.discard(key)
            return
        if new:
            n = self._seen[key] = self._seen.get(key, 0) + 1
            if n == self.per_key:
                self.done_at[key] = now
                self._waiting.discard(key)

    async def wait(self, keys: Sequence[str], timeout: float) -> float:
        """Until every key has its event; returns when the last one arrived (on the watcher's clock)."""
        deadline = time.monotonic() + timeout
        self._waiting = {k for k in keys if k not in self.done_at}
        self._arrived.clear()
        while self._waiting:
            if self._task is not None and self._task.done():
                self._task.result()  # the watcher died: say why
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {len(self._waiting)} of {len(keys)} never had {self.event_name}")
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=0.5)
        return max(self.done_at[k] for k in keys)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


async def count(database_url: str, sql: str) -> int:
    """One number from PostgreSQL, on a short-lived connection."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return int(await conn.fetchval(sql) or 0)
    finally:
        await conn.close()


async def wait_count(
    database_url: str, sql: str, target: int, timeout: float, *, interval: float = 0.1, strict: bool = True
) -> float:
    """Until `sql` counts at least `target` (one connection, polled every `interval` s); returns when, on
    `time.monotonic()`. After `timeout` s: TimeoutError, or with `strict=False` just the time."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + timeout
        while (n := int(await conn.fetchval(sql) or 0)) < target:
            if time.monotonic() > deadline:
                if not strict:
                    break
                raise TimeoutError(f"{sql!r} did not reach {target} within {timeout}s (at {n})")
            await asyncio.sleep(interval)
        return time.monotonic()
    finally:
        await conn.close()


__all__ = [
    "Encoded",
    "EventWatcher",
    "OpenLoop",
    "QueueBound",
    "bench_database",
    "bench_producer",
    "bench_topics",
    "count",
    "encoded",
    "host",
    "latency_ms",
    "open_loop",
    "p50_p99",
    "paced",
    "per_pgbench",
    "percentile",
    "print_result",
    "send_all",
    "wait_count",
]
