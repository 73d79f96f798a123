"""What the soak (`make soak`) samples from a running `Platform`, every few seconds.

- each service's processes, from /proc: resident memory (VmRSS, summed over the service's process group), open
  file descriptors, and established TCP connections by the port they reach (Kafka, PostgreSQL);
- PostgreSQL's own view: `pg_stat_activity` per service database and state; every table's total and index size
  and row counts (partitions rolled up into their root table);
- consumer lag per consumer group of the platform: the end offset minus the committed offset, summed over the
  group's partitions;
- closed → allocated and requested → paid latencies of what completed since the last sample, measured as
  `tests/bench/bench_e2e.py` measures them: the ledger's `created_at` of a round's last reward transfer against
  when the load generator handed the round's close to Kafka, and the payout's `paid` transition in
  `payout_history` against when the player's claim was sent.

Every probe holds its connections for the run (the soak's own connections are named `prizeflow-soak` and left out
of the connection counts), so sampling adds no connection churn of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from prizeflow_runtime.db import asyncpg_dsn

APPLICATION_NAME = "prizeflow-soak"
_PROC = Path("/proc")
_ESTABLISHED = "01"


# --- processes (/proc) ---------------------------------------------------------------------------------------


def process_groups() -> dict[int, list[int]]:
    """Process group → its live processes: a `Platform` service runs in a session (and group) of its own, led by
    the process it spawned, with whatever children that process starts."""
    groups: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...
        groups.setdefault(int(fields[2]), []).append(int(entry.name))
    return groups


def established_sockets() -> dict[int, int]:
    """Socket inode → remote port, for every established TCP connection of this network namespace."""
    remote: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        with suppress(OSError):
            for line in (_PROC / "net" / table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == _ESTABLISHED:
                    remote[int(cols[9])] = int(cols[2].rsplit(":", 1)[1], 16)
    return remote


def _status_kb(pid: int, key: str) -> int:
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def process_resources(
    leader: int,
    ports: dict[str, int],
    *,
    sockets: dict[int, int] | None = None,
    groups: dict[int, list[int]] | None = None,
) -> dict[str, int]:
    """`rss_kb` (summed over the process group `leader` leads), `processes`, `fds` and, per name in `ports`,
    `<name>_connections`: the group's established TCP connections to that remote port. `sockets` and `groups`
    (`established_sockets()`, `process_groups()`) are read once for many calls when given."""
    sockets = established_sockets() if sockets is None else sockets
    groups = process_groups() if groups is None else groups
    by_port = {port: name for name, port in ports.items()}
    out = {"rss_kb": 0, "processes": 0, "fds": 0, **{f"{name}_connections": 0 for name in ports}}
    for pid in groups.get(leader, [leader]):
        try:
            rss = _status_kb(pid, "VmRSS:")
            fds = list((_PROC / str(pid) / "fd").iterdir())
        except OSError:
            continue  # gone between the listing and the read
        links = []
        for fd in fds:
            with suppress(OSError):  # closed since the listing (the listing's own descriptor, for one)
                links.append(os.readlink(fd))
        out["rss_kb"] += rss
        out["processes"] += 1
        out["fds"] += len(links)
        for link in links:
            if link.startswith("socket:[") and (port := sockets.get(int(link[8:-1]))) in by_port:
                out[f"{by_port[port]}_connections"] += 1
    return out


# --- PostgreSQL ----------------------------------------------------------------------------------------------

_ACTIVITY = """
SELECT datname, coalesce(nullif(state, ''), 'unknown') AS state, count(*) AS n
FROM pg_stat_activity
WHERE datname = ANY($1::text[]) AND application_name <> $2 AND backend_type = 'client backend'
GROUP BY 1, 2
"""

# Partitions are rolled up into the table they partition (a time-partitioned inbox is still "inbox").
_TABLES = """
SELECT CASE WHEN rn.nspname = 'public' THEN '' ELSE rn.nspname || '.' END || r.relname AS name,
       sum(pg_total_relation_size(c.oid))::bigint AS total_bytes,
       sum(pg_indexes_size(c.oid))::bigint AS index_bytes,
       sum(coalesce(s.n_live_tup, 0))::bigint AS live_rows,
       sum(coalesce(s.n_dead_tup, 0))::bigint AS dead_rows,
       sum(coalesce(s.n_tup_ins, 0))::bigint AS inserted,
       sum(coalesce(s.n_tup_del, 0))::bigint AS deleted
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = coalesce(pg_partition_root(c.oid), c.oid)
JOIN pg_namespace rn ON rn.oid = r.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
GROUP BY 1
"""


@dataclass
class PostgresProbe:
    """Connections and table sizes of the service databases (`service -> database URL`)."""

    admin_url: str
    databases: dict[str, str]
    _admin: Any = field(default=None, init=False, repr=False)
    _conns: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def names(self) -> dict[str, str]:
        """database name → service"""
        return {url.rsplit("/", 1)[1].split("?", 1)[0]: svc for svc, url in self.databases.items()}

    async def start(self) -> None:
        settings = {"application_name": APPLICATION_NAME}
        self._admin = await asyncpg.connect(asyncpg_dsn(self.admin_url), server_settings=settings)
        for service, url in self.databases.items():
            self._conns[service] = await asyncpg.connect(asyncpg_dsn(url), server_settings=settings)

    async def connections(self) -> dict[str, dict[str, int]]:
        """Per service: its database's client connections by state (`active`, `idle`, ...) and `total`."""
        names = self.names
        out: dict[str, dict[str, int]] = {svc: {"total": 0} for svc in self.databases}
        for row in await self._admin.fetch(_ACTIVITY, list(names), APPLICATION_NAME):
            counts = out[names[row["datname"]]]
            counts[row["state"]] = int(row["n"])
            counts["total"] += int(row["n"])
        return out

    async def tables(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per service, per table: `total_bytes`, `index_bytes`, `live_rows` (estimated), `dead_rows`,
        `inserted` and `deleted` (cumulative counters)."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for service, conn in self._conns.items():
            rows = await conn.fetch(_TABLES)
            out[service] = {r["name"]: {k: int(v) for k, v in r.items() if k != "name"} for r in rows}
        return out

    async def stop(self) -> None:
        for conn in [self._admin, *self._conns.values()]:
            if conn is not None:
                with suppress(Exception):
                    await conn.close()


# --- Kafka ---------------------------------------------------------------------------------------------------


@dataclass
class LagProbe:
    """Lag of every consumer group whose id ends with the platform's topic suffix (a service's group is
    `<consumer><suffix>`); reported under the name without the suffix."""

    bootstrap: str
    suffix: str
    _admin: Any = field(default=None, init=False, repr=False)
    _consumer: Any = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=APPLICATION_NAME)
        await self._admin.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, client_id=APPLICATION_NAME
        )
        await self._consumer.start()

    async def lag(self) -> dict[str, int]:
        groups = sorted(g[0] for g in await self._admin.list_consumer_groups() if str(g[0]).endswith(self.suffix))
        committed: dict[str, dict[TopicPartition, int]] = {}
        for group in groups:
            offsets = await self._admin.list_consumer_group_offsets(group)
            committed[group] = {tp: max(0, meta.offset) for tp, meta in offsets.items()}
        partitions = {tp for offsets in committed.values() for tp in offsets}
        ends = await self._consumer.end_offsets(list(partitions)) if partitions else {}
        return {
            group.removesuffix(self.suffix): sum(max(0, ends.get(tp, 0) - off) for tp, off in offsets.items())
            for group, offsets in committed.items()
        }

    async def stop(self) -> None:
        for client, close in ((self._consumer, "stop"), (self._admin, "close")):
            if client is not None:
                with suppress(Exception):
                    await getattr(client, close)()


# --- latency -------------------------------------------------------------------------------------------------

_ROUNDS_DONE = """
SELECT correlation_id AS key, count(*) AS n, max(created_at) AS at
FROM ledger_transfers WHERE correlation_id = ANY($1::text[]) AND kind = 'reward'
GROUP BY 1
"""

_CLAIMS_PAID = """
SELECT p.claim_id AS key, min(h.at) AS at
FROM payouts p JOIN payout_history h ON h.payout_id = p.id AND h.to_state = 'paid'
WHERE p.claim_id = ANY($1::text[])
GROUP BY 1
"""


@dataclass
class Window:
    """What completed since the previous `take`: how many (allocations or payouts), their latencies (ms, sorted)
    and which keys."""

    completed: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass
class CompletionTracker:
    """Keys the load generator sent (`sent(key, at)`, `at` on `time.time()`), struck off once the database shows
    them complete. `run` looks every `every` seconds (small lookups, by index: the ledger's correlation id, the
    payouts' claim id) and `on_complete` hears of each completed key at once; `take` hands over what completed
    since the last `take`. Only the oldest `max_lookup` pending keys are looked up at a time, so a backlog slows
    the probe down no further than that."""

    database_url: str
    query: str
    units_per_key: int = 1  # a round is complete once all its allocations are there
    max_lookup: int = 50_000
    on_complete: Callable[[list[str]], None] | None = None
    _pending: dict[str, float] = field(default_factory=dict, init=False, repr=False)
    _window: Window = field(default_factory=Window, init=False, repr=False)
    _conn: Any = field(default=None, init=False, repr=False)

    @classmethod
    def rounds(cls, rewards_url: str, players_per_round: int) -> CompletionTracker:
        """Round closed → allocated: keys are round ids (each round's correlation id)."""
        return cls(rewards_url, _ROUNDS_DONE, units_per_key=players_per_round)

    @classmethod
    def claims(cls, payouts_url: str) -> CompletionTracker:
        """Payout requested (the claim) → paid: keys are claim ids."""
        return cls(payouts_url, _CLAIMS_PAID)

    async def start(self) -> None:
        self._conn = await asyncpg.connect(
            asyncpg_dsn(self.database_url), server_settings={"application_name": APPLICATION_NAME}
        )

    def sent(self, key: str, at: float) -> None:
        self._pending[key] = at

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def poll(self) -> None:
        keys = list(self._pending)[: self.max_lookup]  # dicts keep insertion order: the oldest first
        if not keys:
            return
        done = []
        for row in await self._conn.fetch(self.query, keys):
            if row.get("n", self.units_per_key) >= self.units_per_key:
                sent_at = self._pending.pop(row["key"])
                self._window.latencies_ms.append((row["at"].timestamp() - sent_at) * 1000)
                done.append(row["key"])
        self._window.completed += len(done) * self.units_per_key
        self._window.keys += done
        if done and self.on_complete is not None:
            self.on_complete(done)

    async def run(self, stop: asyncio.Event, every: float = 1.0) -> None:
        while not stop.is_set():
            await self.poll()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    def take(self) -> Window:
        window, self._window = self._window, Window()
        window.latencies_ms.sort()
        return window

    async def stop(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                await self._conn.close()


def now() -> float:
    """The clock latencies are measured on: wall time, as PostgreSQL's `now()` and `created_at` are."""
    return time.time()


__all__ = [
    "APPLICATION_NAME",
    "CompletionTracker",
    "LagProbe",
    "PostgresProbe",
    "Window",
    "established_sockets",
    "now",
    "process_groups",
    "process_resources",
]
