"""The hot-account limit (issue 20's capacity model): transfers/s out of ONE campaign-pool account with N concurrent
writers, against the same load spread over K sharded pool accounts, and against batching, on real PostgreSQL.

Every transfer out of a pool takes the pool's row lock (the ledger's FOR NO KEY UPDATE, then the balance update)
and holds it until its transaction commits, WAL flush included. So one pool admits one writing transaction at a
time, whatever the number of writers or cores: its ceiling is (transfers per transaction) / (lock hold time).
Two ways around it, both measured here: more transfers per transaction (batching: what rewards' consumer does, a
whole poll in one transaction) and more pool rows (sharding: K accounts of one campaign, a writer on one of them).

Three clients, each timed for `--seconds` per configuration:
- `ledger`: the production path, `SqlLedger.apply` (savepoint, ordered locks, insert, balance update) in one
  transaction per call, N asyncio writers on their own connections in this process. Python's CPU is part of each
  transaction's lock hold time here (as in the service); `client_cpu_share` says how busy this process was (near 1
  on a core: the client limits, not the lock).
- `grouped`: 1, 8 and 64 concurrent requesters, each asking for ONE transfer out of the one hot pool at a time,
  through a group commit (`prizeflow_runtime.group_commit`, as claim intake does): the requests arriving while a
  transaction commits share the next one, so the hot row is touched once per transaction.
- `sql`: pgbench (C, two threads) running the same shape of transaction (pool update, wallet update, transfer
  insert; one or a batch of transfers), so that the database's own hot-row ceiling shows without Python.

`lock_wait_share` is the share of the writers' backends found waiting on a lock (pg_stat_activity sampled every
20 ms). Prints one JSON document; nothing here changes the ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind
from prizeflow_runtime.db import asyncpg_dsn, create_engine
from prizeflow_runtime.group_commit import GroupCommit
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_testkit.bench import bench_database, host, print_result

ALEMBIC_INI = str(Path(__file__).resolve().parents[1] / "alembic.ini")
WALLETS = 20_000


@dataclass(frozen=True)
class Config:
    writers: int
    pools: int  # pool accounts the writers spread over (1: the hot account)
    batch: int  # transfers per transaction


LEDGER_CONFIGS = [
    Config(w, p, b)
    for w, p, b in [(1, 1, 1), (4, 1, 1), (16, 1, 1), (16, 4, 1), (16, 16, 1), (1, 1, 64), (4, 1, 64), (4, 4, 64)]
]
# Group commit (as claim intake does): N concurrent writers each ask for ONE transfer out of the one hot pool and
# wait for it; requests arriving while a transaction commits share the next (`GroupCommit`).
GROUPED_CONFIGS = [Config(w, 1, 1) for w in (1, 8, 64)]
SQL_CONFIGS = [
    Config(w, p, b)
    for w, p, b in [(1, 1, 1), (4, 1, 1), (16, 1, 1), (32, 1, 1), (16, 4, 1), (16, 16, 1), (32, 32, 1), (4, 1, 64)]
]


@dataclass(frozen=True)
class Target:
    engine: AsyncEngine
    dsn: str  # the same database, for asyncpg and pgbench
    database: str


def pool(k: int) -> AccountRef:
    return AccountRef(AccountKind.CAMPAIGN_POOL, f"hot-camp#{k}", "USDC")


def wallet(n: int) -> AccountRef:
    return AccountRef(AccountKind.PLAYER_WALLET, f"hot-p-{n}", "USDC")


class LockSampler:
    """Every 20 ms: how many of the database's active backends wait on a lock (heavyweight: row, tuple, xid)."""

    def __init__(self, dsn: str, database: str) -> None:
        self.dsn, self.database = dsn, database
        self.active = self.waiting = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE state = 'active') AS active, "
                    "count(*) FILTER (WHERE state = 'active' AND wait_event_type = 'Lock') AS waiting "
                    "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    self.database,
                )
                assert row is not None
                self.active += int(row["active"])
                self.waiting += int(row["waiting"])
                await asyncio.sleep(0.02)
        finally:
            await conn.close()

    def __enter__(self) -> LockSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def share(self) -> float:
        return round(self.waiting / self.active, 3) if self.active else 0.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run_writers(
    target: Target, writers: int, writer: Callable[[int], Awaitable[None]]
) -> tuple[float, float, float]:
    """`writer(0..writers-1)` run to the end: (seconds, the client's CPU share, backends' lock-wait share)."""
    cpu0, started = cpu_seconds(), time.monotonic()
    with LockSampler(target.dsn, target.database) as locks:
        await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu0
    return elapsed, round(cpu / elapsed, 2), locks.share


async def ledger_run(target: Target, config: Config, *, seconds: float, tag: str) -> dict[str, Any]:
    engine, writers, pools, batch = target.engine, config.writers, config.pools, config.batch
    ledger = SqlLedger
    done = [0] * writers
    deadline = time.monotonic() + seconds

    async def writer(w: int) -> None:
        rng = random.Random(w)
        source = pool(w % pools)  # a writer keeps to its shard (as a consumer keeps to its partitions)
        n = 0
        while time.monotonic() < deadline:
            transfers = [
                Transfer.of(source, wallet(rng.randrange(WALLETS)), 1, TransferKind.REWARD, f"{tag}-{w}-{n}", str(i))
                for i in range(batch)
            ]
            async with engine.begin() as conn:
                await ledger(conn).apply(transfers)
            n += 1
            done[w] += batch

    elapsed, client_cpu, lock_share = await _run_writers(target, writers, writer)
    return {
        "client": "ledger",
        "writers": writers,
        "pool_accounts": pools,
        "transfers_per_txn": batch,
        "transfers_per_s": round(sum(done) / elapsed),
        "txns_per_s": round(sum(done) / batch / elapsed),
        "lock_wait_share": lock_share,
        "client_cpu_share": client_cpu,
    }


async def grouped_run(target: Target, config: Config, *, seconds: float, tag: str) -> dict[str, Any]:
    """`writers` concurrent requesters, one transfer each per request, out of ONE pool, through a group commit:
    the hot row is touched once per transaction, whatever the number of writers."""
    engine, writers = target.engine, config.writers
    ledger = SqlLedger
    done = [0] * writers
    batches: list[int] = []
    deadline = time.monotonic() + seconds

    async def commit(transfers: Sequence[Transfer]) -> list[int]:
        async with engine.begin() as conn:
            await ledger(conn).apply(list(transfers))
        batches.append(len(transfers))
        return [1] * len(transfers)

    group: GroupCommit[Transfer, int] = GroupCommit(commit, name="hot", max_batch=500)

    async def writer(w: int) -> None:
        rng = random.Random(w)
        n = 0
        while time.monotonic() < deadline:
            t = Transfer.of(pool(0), wallet(rng.randrange(WALLETS)), 1, TransferKind.REWARD, f"{tag}-{w}-{n}", "g")
            done[w] += await group.submit(t)
            n += 1

    elapsed, client_cpu, lock_share = await _run_writers(target, writers, writer)
    return {
        "client": "grouped",
        "writers": writers,
        "pool_accounts": 1,
        "transfers_per_txn": round(sum(batches) / len(batches), 1) if batches else 0,
        "transfers_per_s": round(sum(done) / elapsed),
        "txns_per_s": round(len(batches) / elapsed),
        "lock_wait_share": lock_share,
        "client_cpu_share": client_cpu,
    }


_SQL_SCHEMA = """
    DROP TABLE IF EXISTS hot_pools, hot_wallets, hot_transfers;
    CREATE TABLE hot_pools (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0));
    CREATE TABLE hot_wallets (id int PRIMARY KEY, balance bigint NOT NULL);
    CREATE TABLE hot_transfers (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, pool int NOT NULL, wallet int NOT NULL,
        amount bigint NOT NULL, at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO hot_pools SELECT g, 1000000000000000 FROM generate_series(0, 63) g;
    INSERT INTO hot_wallets SELECT g, 0 FROM generate_series(0, $WALLETS - 1) g;
""".replace("$WALLETS", str(WALLETS))
# One transaction = `batch` transfers from the client's pool (client_id mod pools) to consecutive wallets.
_SQL_SCRIPT = """\\set w random(0, {last})
\\set p :client_id % :pools
BEGIN;
UPDATE hot_pools SET balance = balance - :batch WHERE id = :p;
UPDATE hot_wallets SET balance = balance + 1 WHERE id BETWEEN :w AND :w + :batch - 1;
INSERT INTO hot_transfers (pool, wallet, amount) SELECT :p, g, 1 FROM generate_series(:w, :w + :batch - 1) g;
END;
"""


async def sql_run(target: Target, config: Config, *, seconds: float) -> dict[str, Any]:
    dsn, writers, pools, batch = target.dsn, config.writers, config.pools, config.batch
    pgbench = shutil.which("pgbench") or "pgbench"
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(_SQL_SCRIPT.format(last=WALLETS - batch))
        script = f.name
    try:
        argv = [
            pgbench, "-n", "-c", str(writers), "-j", str(min(2, writers)), "-T", str(int(seconds)), "-f", script,
            "-D", f"pools={pools}", "-D", f"batch={batch}", dsn,
        ]  # fmt: skip
        with LockSampler(dsn, target.database) as locks:
            proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed: {err.decode()[-2000:]}")
    finally:
        os.unlink(script)
    tps = next(float(line.split("=")[1].split()[0]) for line in out.decode().splitlines() if line.startswith("tps"))
    return {
        "client": "sql",
        "writers": writers,
        "pool_accounts": pools,
        "transfers_per_txn": batch,
        "transfers_per_s": round(tps * batch),
        "txns_per_s": round(tps),
        "lock_wait_share": locks.share,
    }


async def run(database_url: str, seconds: float, which: set[str]) -> dict[str, Any]:
    await upgrade_to_head(ALEMBIC_INI, database_url)
    dsn = asyncpg_dsn(database_url)
    database = dsn.rsplit("/", 1)[1].split("?")[0]
    engine = create_engine(database_url, pool_size=max(c.writers for c in LEDGER_CONFIGS) + 2)
    target = Target(engine, dsn, database)
    ledger = SqlLedger
    treasury = AccountRef(AccountKind.TREASURY, "platform", "USDC")
    shards = max(c.pools for c in LEDGER_CONFIGS)
    async with engine.begin() as conn:
        await ledger(conn).apply(
            [
                Transfer.of(treasury, pool(k), 10**15, TransferKind.CAMPAIGN_FUNDING, f"hot{k}", "f")
                for k in range(shards)
            ],
        )
    for n in range(0, WALLETS, 1000):  # every wallet exists and is warm before the timed runs
        async with engine.begin() as conn:
            await ledger(conn).apply(
                [Transfer.of(pool(0), wallet(i), 1, TransferKind.REWARD, "warm", str(i)) for i in range(n, n + 1000)],
            )
    async with engine.connect() as conn:
        settings = {
            r[0]: r[1]
            for r in await conn.execute(
                text(
                    "SELECT name, setting FROM pg_settings "
                    "WHERE name IN ('fsync', 'synchronous_commit', 'commit_delay')"
                )
            )
        }
    runs: list[dict[str, Any]] = []
    if "ledger" in which:
        for i, config in enumerate(LEDGER_CONFIGS):
            runs.append(await ledger_run(target, config, seconds=seconds, tag=f"r{i}"))
            print(runs[-1], flush=True)
    if "grouped" in which:
        for i, config in enumerate(GROUPED_CONFIGS):
            runs.append(await grouped_run(target, config, seconds=seconds, tag=f"g{i}"))
            print(runs[-1], flush=True)
    await engine.dispose()
    if "sql" in which:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(_SQL_SCHEMA)
        finally:
            await conn.close()
        for config in SQL_CONFIGS:
            runs.append(await sql_run(target, config, seconds=seconds))
            print(runs[-1], flush=True)

    def best(client: str, *, pools: int, batch: int) -> int:
        rates = [
            r["transfers_per_s"]
            for r in runs
            if (r["client"], r["pool_accounts"], r["transfers_per_txn"]) == (client, pools, batch)
        ]
        return max(rates, default=0)

    grouped = {f"{r['writers']}_writers": r["transfers_per_s"] for r in runs if r["client"] == "grouped"}
    return {
        "bench": "hot_account",
        "one_pool_group_commit": grouped,
        "seconds_per_config": seconds,
        "wallets": WALLETS,
        "postgres": settings,
        "host": host(),
        "cores": os.cpu_count(),
        "runs": runs,
        "summary": {
            client: {
                "one_pool_one_transfer_per_txn": best(client, pools=1, batch=1),
                "sharded_one_transfer_per_txn": max(
                    (
                        r["transfers_per_s"]
                        for r in runs
                        if r["client"] == client and r["pool_accounts"] > 1 and r["transfers_per_txn"] == 1
                    ),
                    default=0,
                ),
                "one_pool_batched_64": best(client, pools=1, batch=64),
            }
            for client in sorted(which - {"grouped"})
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    which = set(args.clients.split(","))
    if args.database_url:
        return await run(args.database_url, args.seconds, which)
    from prizeflow_devstack.infra import ensure_infra

    async with bench_database(ensure_infra(), "bench_hot") as url:
        return await run(url, args.seconds, which)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--seconds", type=float, default=4, help="per configuration (4)")
    parser.add_argument(
        "--clients", default="ledger,grouped,sql", help="any of ledger, grouped, sql (ledger,grouped,sql)"
    )
    print_result(asyncio.run(main_async(parser.parse_args())), indent=None)


if __name__ == "__main__":
    main()
