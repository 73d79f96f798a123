"""What a benchmark phase cost: CPU of every service process, of PostgreSQL and of the Kafka broker, plus
PostgreSQL's WAL and transactions and Kafka's bytes in (issue 20's capacity model, docs/capacity.md).

A `CostMeter` takes a `Snapshot` before and after a phase; `Snapshot.delta` says what the phase cost. Every
figure comes from counters the kernel or the server keeps, so the measuring costs next to nothing:

- CPU: utime + stime from `/proc/<pid>/stat` (clock ticks), summed over each service's process group (a
  `Platform` service leads a session of its own), with the children its leader has reaped (cutime + cstime).
- PostgreSQL: the postmaster with every child process (the postmaster's reaped children included: backends that
  came and went), split into the backends of the platform's databases (`pg_stat_activity`) and the rest (other
  databases on a shared server, checkpointer, WAL writer, autovacuum); `pg_current_wal_lsn()` (server-wide) and
  `pg_stat_database` (per database: commits, rollbacks, tuples written).
- Kafka: the broker process (found by the port it listens on) and the bytes appended to each topic's log
  segments (`<log.dirs>/<topic>-<partition>/*.log`), the topics with the platform's suffix apart.

All of this needs PostgreSQL and Kafka on this machine (the devstack's local processes); where a process or a
directory cannot be seen (a container), its figures are absent rather than wrong. On a shared server the
server-wide figures include other tenants' work: the platform's share of the WAL is apportioned by its share of
the tuples written, and `contention` records the load average and the other tenants' share.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from prizeflow_runtime.db import asyncpg_dsn

_PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")
_LISTEN = "0A"


@dataclass(frozen=True, slots=True)
class ProcStat:
    ppid: int
    pgrp: int
    own: int  # utime + stime, clock ticks
    reaped: int  # cutime + cstime: children it waited for


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # after "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime
    f = raw[raw.rfind(")") + 2 :].split()
    return ProcStat(int(f[1]), int(f[2]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14]))


def process_table() -> dict[int, ProcStat]:
    table: dict[int, ProcStat] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (st := proc_stat(int(entry.name))) is not None:
            table[int(entry.name)] = st
    return table


def group_cpu_ticks(leader: int, table: Mapping[int, ProcStat]) -> int:
    """CPU of the process group `leader` leads: its live members, and what its leader reaped."""
    lead = table.get(leader)
    total = lead.reaped if lead is not None else 0
    return total + sum(st.own for st in table.values() if st.pgrp == leader)


def tree_cpu_ticks(root: int, table: Mapping[int, ProcStat]) -> dict[int, int]:
    """`root` (with what it reaped) and each of its direct children, by pid: a postmaster and its processes."""
    lead = table.get(root)
    if lead is None:
        return {}
    out = {root: lead.own + lead.reaped}
    out.update({pid: st.own for pid, st in table.items() if st.ppid == root})
    return out


def listening_pid(port: int) -> int | None:
    """The process with a TCP socket listening on `port` (the Kafka broker), if this namespace can see it."""
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        with suppress(OSError):
            for line in (_PROC / "net" / name).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == _LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(entry.name)
    return None


def kafka_log_dirs(broker_pid: int) -> list[Path]:
    """The broker's `log.dirs`, read from the properties file its command line names."""
    try:
        argv = (_PROC / str(broker_pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    for arg in reversed(argv):
        if arg.endswith(b".properties"):
            props = Path(arg.decode())
            with suppress(OSError):
                for line in props.read_text().splitlines():
                    key, _, value = line.partition("=")
                    if key.strip() in {"log.dirs", "log.dir"}:
                        return [Path(d.strip()) for d in value.split(",") if d.strip()]
    return []


def topic_log_bytes(dirs: list[Path]) -> dict[str, int]:
    """Bytes in each topic's log segments (`.log` files only: index files are preallocated)."""
    out: dict[str, int] = {}
    for d in dirs:
        with suppress(OSError):
            for part in d.iterdir():
                topic, _, partition = part.name.rpartition("-")
                if not topic or not partition.isdigit():
                    continue  # e.g. a topic being deleted (`<topic>-<n>.<id>-delete`)
                size = 0
                with suppress(OSError):
                    size = sum(f.stat().st_size for f in part.iterdir() if f.suffix == ".log")
                out[topic] = out.get(topic, 0) + size
    return out


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.monotonic()
    services: dict[str, int]  # name -> CPU ticks of its process group
    postgres: dict[int, int]  # pid -> CPU ticks (the postmaster with what it reaped, each child)
    postgres_db_of: dict[int, str]  # backend pid -> database (pg_stat_activity)
    kafka: int | None  # broker CPU ticks
    kafka_topics: dict[str, int]  # topic -> log bytes
    wal_lsn: int | None
    databases: dict[str, dict[str, int]]  # datname -> pg_stat_database counters
    load_average: tuple[float, float, float]
    # name -> CPU ticks of one process alone (every thread, no children): the load generator, i.e. the bench itself
    load: dict[str, int] = field(default_factory=dict)

    def delta(self, before: Snapshot, suffix: str, platform_dbs: Mapping[str, str]) -> dict[str, Any]:
        """What happened between `before` and this snapshot. `platform_dbs`: service -> its database name."""
        seconds = self.at - before.at
        services = {n: _s(t - before.services.get(n, t)) for n, t in self.services.items() if n in before.services}
        load = {n: _s(t - before.load[n]) for n, t in self.load.items() if n in before.load}
        ours = set(platform_dbs.values())
        pg_by_db: dict[str, float] = {}
        pg_total = 0
        for pid, ticks in self.postgres.items():
            d = ticks - before.postgres.get(pid, 0)  # a process that started within the phase: all of it
            pg_total += d
            db = self.postgres_db_of.get(pid) or before.postgres_db_of.get(pid)
            if db in ours:
                pg_by_db[db] = pg_by_db.get(db, 0) + d
        gone = sum(t for pid, t in before.postgres.items() if pid not in self.postgres)
        pg_total -= gone  # their CPU is in the postmaster's reaped counter now, counted above
        counters = {
            db: {k: v - before.databases.get(db, {}).get(k, 0) for k, v in c.items()}
            for db, c in self.databases.items()
        }
        written = {db: c["tup_inserted"] + c["tup_updated"] + c["tup_deleted"] for db, c in counters.items()}
        ours_written = sum(w for db, w in written.items() if db in ours)
        all_written = sum(written.values())
        wal = None if self.wal_lsn is None or before.wal_lsn is None else self.wal_lsn - before.wal_lsn
        share = ours_written / all_written if all_written else 1.0
        topic_growth = {t: b - before.kafka_topics.get(t, 0) for t, b in self.kafka_topics.items()}
        kafka_ours = sum(max(0, g) for t, g in topic_growth.items() if t.endswith(suffix))
        kafka_all = sum(max(0, g) for g in topic_growth.values())
        by_service_db = dict(platform_dbs)
        return {
            "seconds": round(seconds, 3),
            "cpu_s": services,
            "cpu_s_load": load,
            "postgres": {
                "cpu_s_server": _s(pg_total) if self.postgres else None,
                "cpu_s_platform_backends": _s(sum(pg_by_db.values())) if self.postgres else None,
                "cpu_s_by_service": {svc: _s(pg_by_db.get(db, 0)) for svc, db in by_service_db.items()},
                "wal_bytes_server": wal,
                "wal_bytes_platform": None if wal is None else round(wal * share),
                "platform_share_of_tuples_written": round(share, 3),
                "by_service": {
                    svc: {
                        "xacts": counters.get(db, {}).get("xact_commit", 0)
                        + counters.get(db, {}).get("xact_rollback", 0),
                        "tuples_written": written.get(db, 0),
                        "blocks_read": counters.get(db, {}).get("blks_read", 0),
                    }
                    for svc, db in by_service_db.items()
                },
            },
            "kafka": {
                "cpu_s_broker": None if self.kafka is None or before.kafka is None else _s(self.kafka - before.kafka),
                "bytes_in_platform": kafka_ours,
                "bytes_in_all_topics": kafka_all,
            },
            "load_average_after": list(self.load_average),
        }


def _s(ticks: float) -> float:
    return round(ticks / CLK_TCK, 3)


_DB_STATS = """
    SELECT datname, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, blks_read
    FROM pg_stat_database WHERE datname IS NOT NULL
"""


@dataclass
class CostMeter:
    """Snapshots of a platform's costs. `services`: name -> the pid leading its process group (a callable's
    result may change across restarts: pass a fresh mapping to each `snapshot`)."""

    postgres_url: str
    kafka_bootstrap: str
    _conn: asyncpg.Connection | None = field(default=None, init=False, repr=False)
    _postmaster: int | None = field(default=None, init=False, repr=False)
    _broker: int | None = field(default=None, init=False, repr=False)
    _log_dirs: list[Path] = field(default_factory=list, init=False, repr=False)

    async def start(self) -> None:
        self._conn = await asyncpg.connect(
            asyncpg_dsn(self.postgres_url), server_settings={"application_name": "prizeflow-cost-meter"}
        )
        backend = int(await self._conn.fetchval("SELECT pg_backend_pid()"))
        st = proc_stat(backend)
        self._postmaster = st.ppid if st is not None else None
        port = int(self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])
        self._broker = listening_pid(port)
        self._log_dirs = kafka_log_dirs(self._broker) if self._broker is not None else []

    @property
    def sees(self) -> dict[str, bool]:
        """Which servers this machine can measure (local processes)."""
        return {"postgres_processes": self._postmaster is not None, "kafka_broker": self._broker is not None}

    async def snapshot(self, services: Mapping[str, int], load: Mapping[str, int] | None = None) -> Snapshot:
        """The counters now. `services`: name -> the leader of its process group; `load`: name -> a process
        measured alone (the load generator: the bench's own process, whose group may hold its shell)."""
        assert self._conn is not None, "start() first"
        # PostgreSQL's own view first, then the kernel's counters in one pass (close together in time).
        activity = await self._conn.fetch("SELECT pid, datname FROM pg_stat_activity WHERE datname IS NOT NULL")
        lsn = await self._conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        rows = await self._conn.fetch(_DB_STATS)
        table = process_table()
        return Snapshot(
            at=time.monotonic(),
            services={name: group_cpu_ticks(leader, table) for name, leader in services.items()},
            postgres=tree_cpu_ticks(self._postmaster, table) if self._postmaster is not None else {},
            postgres_db_of={int(r["pid"]): str(r["datname"]) for r in activity},
            kafka=(group_cpu_ticks(self._broker, table) if self._broker is not None else None),
            kafka_topics=topic_log_bytes(self._log_dirs),
            wal_lsn=int(lsn) if lsn is not None else None,
            databases={str(r["datname"]): {k: int(v) for k, v in r.items() if k != "datname"} for r in rows},
            load_average=os.getloadavg(),
            load={name: st.own for name, pid in (load or {}).items() if (st := table.get(pid)) is not None},
        )

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def per_unit(
    delta: Mapping[str, Any],
    units: Mapping[str, int],
    idle: Mapping[str, float] | None = None,
    *,
    prizeflow: Collection[str] | None = None,
) -> dict[str, Any]:
    """CPU-µs (and PostgreSQL/Kafka cost) per unit of work of a phase's `delta`, for each `units` name (e.g.
    {"round": 1500, "allocation": 12000}). With `idle` (service -> CPU s per s when idle), also the figures net of
    what the service would have spent idle over the phase.

    Per process: each service (`cpu_us_by_service`), the PostgreSQL backends of each service's database
    (`postgres_cpu_us_by_service`), the Kafka broker, and the load generator (`cpu_us_load`, never in the totals).
    `cpu_us_prizeflow` sums the services named in `prizeflow` (all by default; the providers' emulators a platform
    runs beside them are then `cpu_us_emulators`); `cpu_us_everything` is Prizeflow + its PostgreSQL backends + the
    broker (absent where one cannot be seen)."""
    seconds = float(delta["seconds"])
    every = dict(delta["cpu_s"])
    cpu = {n: v for n, v in every.items() if prizeflow is None or n in prizeflow}
    emulators = {n: v for n, v in every.items() if n not in cpu}
    net = {n: max(0.0, v - (idle or {}).get(n, 0.0) * seconds) for n, v in cpu.items()}
    pg, kafka = delta["postgres"], delta["kafka"]
    out: dict[str, Any] = {}
    for unit, n in units.items():
        if n <= 0:
            continue
        per: dict[str, Any] = {
            "cpu_us_by_service": {s: round(v * 1e6 / n, 1) for s, v in every.items()},
            "cpu_us_prizeflow": round(sum(cpu.values()) * 1e6 / n, 1),
            "cpu_us_load": {s: round(v * 1e6 / n, 1) for s, v in delta.get("cpu_s_load", {}).items()},
        }
        if emulators:
            per["cpu_us_emulators"] = round(sum(emulators.values()) * 1e6 / n, 1)
        if idle is not None:
            per["cpu_us_by_service_net_of_idle"] = {s: round(v * 1e6 / n, 1) for s, v in net.items()}
            per["cpu_us_prizeflow_net_of_idle"] = round(sum(net.values()) * 1e6 / n, 1)
        if pg["cpu_s_platform_backends"] is not None:
            per["postgres_cpu_us_platform_backends"] = round(pg["cpu_s_platform_backends"] * 1e6 / n, 1)
            per["postgres_cpu_us_server"] = round(pg["cpu_s_server"] * 1e6 / n, 1)
            per["postgres_cpu_us_by_service"] = {
                s: round(v * 1e6 / n, 1) for s, v in pg.get("cpu_s_by_service", {}).items()
            }
        if pg["wal_bytes_platform"] is not None:
            per["postgres_wal_bytes"] = round(pg["wal_bytes_platform"] / n, 1)
        per["postgres_xacts"] = round(sum(s["xacts"] for s in pg["by_service"].values()) / n, 4)
        per["postgres_xacts_by_service"] = {s: round(v["xacts"] / n, 4) for s, v in pg["by_service"].items()}
        if kafka["cpu_s_broker"] is not None:
            per["kafka_broker_cpu_us"] = round(kafka["cpu_s_broker"] * 1e6 / n, 1)
        per["kafka_bytes_in"] = round(kafka["bytes_in_platform"] / n, 1)
        if pg["cpu_s_platform_backends"] is not None and kafka["cpu_s_broker"] is not None:
            everything = sum(cpu.values()) + pg["cpu_s_platform_backends"] + kafka["cpu_s_broker"]
            per["cpu_us_everything"] = round(everything * 1e6 / n, 1)
        out[unit] = per
    return out


class Phases:
    """A benchmark's phases, each measured with a `CostMeter` (and with `profile_to`, profiled: py-spy's own CPU
    is then in the figures): CPU from the phase's start to the moment its work
    was complete (`quiesce()` returned: e.g. every consumer group caught up, so that no backlog of one phase is
    counted in the next); then `settle_s` of quiet, after which PostgreSQL's per-database counters are read (a backend
    flushes its statistics at most once a second while busy, and 10 s after it went idle), with the quiet's idle
    transactions taken off. `idle()` measures those idle rates (CPU s/s per service, transactions/s) first.

    `services()` gives the current process-group leaders (they change when a service restarts); `load` names
    processes measured alone and apart from the platform (the load generator: the bench's own process);
    `prizeflow` the services whose CPU is Prizeflow's (the others are providers' emulators); `before` runs before each
    phase's first snapshot."""

    def __init__(
        self,
        meter: CostMeter,
        services: Callable[[], Mapping[str, int]],
        suffix: str,
        platform_dbs: Mapping[str, str],
        *,
        settle_s: float = 11.0,
        quiesce: Callable[[], Awaitable[object]] | None = None,
        profile_to: Path | None = None,
        load: Mapping[str, int] | None = None,
        prizeflow: Collection[str] | None = None,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.meter, self.services, self.suffix, self.platform_dbs = meter, services, suffix, dict(platform_dbs)
        self.before = before
        self.settle_s, self.quiesce, self.profile_to = settle_s, quiesce, profile_to
        self.load = dict(load or {})
        self.prizeflow = None if prizeflow is None else frozenset(prizeflow)
        self._profiler: Profiler | None = None
        self.idle_cpu_s_per_s: dict[str, float] = {}
        self.idle_xacts_per_s: dict[str, float] = {}
        self.results: dict[str, dict[str, Any]] = {}

    async def idle(self, seconds: float) -> dict[str, Any]:
        """The platform doing nothing for `seconds` (after `settle_s`, so that earlier work's statistics are in)."""
        await asyncio.sleep(self.settle_s)
        before = await self.meter.snapshot(self.services(), self.load)
        await asyncio.sleep(seconds)
        after = await self.meter.snapshot(self.services(), self.load)
        d = after.delta(before, self.suffix, self.platform_dbs)
        self.idle_cpu_s_per_s = {n: v / d["seconds"] for n, v in d["cpu_s"].items()}
        self.idle_xacts_per_s = {n: v["xacts"] / d["seconds"] for n, v in d["postgres"]["by_service"].items()}
        by_db = d["postgres"]["cpu_s_by_service"] if d["postgres"]["cpu_s_platform_backends"] is not None else {}
        return {
            "seconds": d["seconds"],
            "cpu_ms_per_s": {n: round(v * 1000, 2) for n, v in self.idle_cpu_s_per_s.items()},
            "xacts_per_s": {n: round(v, 1) for n, v in self.idle_xacts_per_s.items()},
            "postgres_cpu_ms_per_s_platform_backends": _rate_ms(d["postgres"]["cpu_s_platform_backends"], d),
            "postgres_cpu_ms_per_s_by_service": {n: _rate_ms(v, d) for n, v in by_db.items()},
            "kafka_broker_cpu_ms_per_s": _rate_ms(d["kafka"]["cpu_s_broker"], d),
        }

    async def begin(self, name: str) -> Snapshot:
        """Phase `name` begins (profiled with py-spy into `profile_to/<name>/` when given), after `before()` (the
        bench's: a checkpoint, so that no phase pays for the checkpoints the WAL of the ones before it would start)."""
        if self.before is not None:
            await self.before()
        if self.profile_to is not None:
            self._profiler = Profiler(self.profile_to / name)
            self._profiler.start(self.services(), alone=self.load)
        return await self.meter.snapshot(self.services(), self.load)

    async def end(self, name: str, begun: Snapshot, units: Mapping[str, int]) -> dict[str, Any]:
        """The phase `name` that began with `begun` is complete now (once `quiesce()` returns): its costs, per
        each of `units`."""
        if self.quiesce is not None:
            await self.quiesce()
        done = await self.meter.snapshot(self.services(), self.load)
        d = done.delta(begun, self.suffix, self.platform_dbs)
        if self._profiler is not None:
            d["profile"] = await asyncio.to_thread(self._profiler.stop)
            self._profiler = None
        if self.settle_s > 0:
            await asyncio.sleep(self.settle_s)
            settled = await self.meter.snapshot(self.services())
            late = settled.delta(begun, self.suffix, self.platform_dbs)["postgres"]["by_service"]
            quiet = settled.at - done.at
            for svc, counters in late.items():
                idle = self.idle_xacts_per_s.get(svc, 0.0) * quiet
                counters["xacts"] = max(0, round(counters["xacts"] - idle))
            d["postgres"]["by_service"] = late
        d["units"] = dict(units)
        d["per"] = per_unit(d, units, self.idle_cpu_s_per_s or None, prizeflow=self.prizeflow)
        self.results[name] = d
        return d


def _rate_ms(cpu_s: float | None, d: Mapping[str, Any]) -> float | None:
    return None if cpu_s is None else round(cpu_s * 1000 / float(d["seconds"]), 2)


class Profiler:
    """py-spy sampling each service process (and its children) until `stop()`, only the thread holding the GIL
    (Python on a CPU: idle pool threads and the event loop's wait are left out): raw collapsed stacks per service
    under `out`, summarised as the frames most samples were in (self) and under (inclusive).

    Non-blocking: py-spy reads a process's stacks without stopping it (a profiled run stopped a dozen processes 97
    times a second and ran at a fifth of the claims rate, docs/capacity.md); a stack read while it changes is now and
    then wrong, which the shares of thousands of samples absorb."""

    def __init__(self, out: Path, rate: int = 97) -> None:
        self.out, self.rate = out, rate
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, services: Mapping[str, int], alone: Mapping[str, int] | None = None) -> None:
        """Sample each of `services` with the processes it starts, and each of `alone` by itself."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.out.mkdir(parents=True, exist_ok=True)
        targets = [(n, pid, ["--subprocesses"]) for n, pid in services.items()]
        targets += [(n, pid, []) for n, pid in (alone or {}).items()]
        for name, pid, children in targets:
            self.procs[name] = subprocess.Popen(
                [spy, "record", "--pid", str(pid), *children, "--gil", "--nonblocking", "--rate", str(self.rate),
                 "--duration", "3600", "--format", "raw", "-o", str(self.out / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=(self.out / f"{name}.log").open("wb"),
            )  # fmt: skip

    def stop(self, top: int = 12) -> dict[str, Any]:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGINT)  # py-spy writes what it sampled on Ctrl-C
        summary: dict[str, Any] = {}
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            path = self.out / f"{name}.txt"
            summary[name] = top_frames(path.read_text(), top) if path.exists() else {"error": "no samples written"}
        return summary


def frame_package(frame: str) -> str:
    """The top-level package of a py-spy frame `function (package/module.py:line)`: `asyncpg`, `pydantic`,
    `prizeflow_rewards`...; `interpreter` for frozen modules."""
    if "(" not in frame:
        return frame.split(":", maxsplit=1)[0]
    path = frame[frame.rfind("(") + 1 : frame.rfind(")")].rsplit(":", 1)[0]
    head = path.split("/", maxsplit=1)[0]
    if head.startswith("<"):
        return "interpreter"
    return head.removesuffix(".py")


def top_frames(collapsed: str, top: int = 12) -> dict[str, Any]:
    """From collapsed stacks (`frame;frame;... count`, root first): the frames with the most samples on top of
    the stack (self) and anywhere in it (inclusive), and the self samples by package, as shares of all samples.
    Frames in at least 90% of the samples (the interpreter's entry, the event loop's runner) are scaffolding:
    left out of the inclusive list."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        package = frame_package(frames[-1])
        packages[package] = packages.get(package, 0) + count
        for f in set(frames):
            inclusive[f] = inclusive.get(f, 0) + count

    def best(d: dict[str, int]) -> list[list[Any]]:
        return [[f, round(c / total, 3)] for f, c in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    if not total:
        return {"samples": 0, "self": [], "inclusive": [], "self_by_package": []}
    scaffold = {f for f, c in inclusive.items() if c >= 0.9 * total}
    below = {f: c for f, c in inclusive.items() if f not in scaffold}
    return {"samples": total, "self": best(own), "inclusive": best(below), "self_by_package": best(packages)}


__all__ = [
    "CLK_TCK",
    "CostMeter",
    "Phases",
    "ProcStat",
    "Profiler",
    "Snapshot",
    "frame_package",
    "group_cpu_ticks",
    "kafka_log_dirs",
    "listening_pid",
    "per_unit",
    "proc_stat",
    "process_table",
    "top_frames",
    "topic_log_bytes",
    "tree_cpu_ticks",
]
