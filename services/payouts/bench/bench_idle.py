"""What an idle payouts replica costs: its process CPU and its database's commits per second, with nothing to do.

Starts the platform (every service its own process, as the e2e tests do)
on the devstack's PostgreSQL and Kafka, lets it settle, then samples `utime+stime` of the payouts process and
`xact_commit` of its database over a window, for each `PAYOUTS_WORKER_IDLE_MAX_MS` given (the Stellar engine's
own idle back-off is not a setting: compare builds for it).

    DATABASE_URL=... KAFKA_BOOTSTRAP_SERVERS=... uv run python services/payouts/bench/bench_idle.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from prizeflow_devstack import ensure_infra
from prizeflow_devstack.platform import Platform


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _commits(dsn: str, database: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", database)
        return value
    finally:
        await conn.close()


def measure(idle_max_ms: int, seconds: float, settle_s: float) -> dict[str, float]:
    infra = ensure_infra()
    platform = Platform(
        infra,
        Path(tempfile.mkdtemp(prefix="prizeflow-idle-")),
        service_env={"payouts": {"PAYOUTS_WORKER_IDLE_MAX_MS": str(idle_max_ms)}},
    )
    try:
        platform.start()
        time.sleep(settle_s)  # a bench, not a test: let start-up work (migrations, route announcements) finish
        pid = platform.procs["payouts"].popen.pid  # type: ignore[union-attr]
        dsn = infra.postgres_url.replace("postgresql+asyncpg://", "postgresql://")
        db = platform.database_name("payouts")
        cpu0, commits0, t0 = _cpu_s(pid), asyncio.run(_commits(dsn, db)), time.monotonic()
        time.sleep(seconds)
        cpu1, commits1, t1 = _cpu_s(pid), asyncio.run(_commits(dsn, db)), time.monotonic()
        wall = t1 - t0
        return {
            "idle_max_ms": idle_max_ms,
            "window_s": round(wall, 1),
            "cpu_ms_per_s": round((cpu1 - cpu0) / wall * 1000, 1),
            "commits_per_s": round((commits1 - commits0) / wall, 1),
        }
    finally:
        platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--idle-max-ms", type=int, nargs="+", default=[1000])
    args = parser.parse_args()
    results = [measure(ms, args.seconds, args.settle) for ms in args.idle_max_ms]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
