"""Two worker processes on one database: 1,000 payouts, none submitted twice, none lost.

Also: a worker SIGKILLed mid-flight leaves `submitting` rows behind; once their lease expires another
worker takes them over, syncs first (same idempotency key) and the payout is still executed exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import asyncpg
import pytest

from prizeflow_payouts.application.payout_requests import CreatePayoutCommand
from prizeflow_payouts.bootstrap import compose
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import Process, eventually, provision_test_topics, python_module, stop_all
from prizeflow_testkit.payouts import fetch, providers_file, request, settings_for

pytestmark = pytest.mark.integration


async def _create(settings: PayoutsSettings, addresses: list[str]) -> None:
    """The payouts to work on, and the topics the worker processes verify at start (as the ops Job would)."""
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix)
    parts = compose(settings)
    try:
        commands = []
        for address in addresses:
            d = request(address=address).data
            commands.append(
                CreatePayoutCommand(
                    payout_request_id=d.payout_request_id,
                    claim_id=d.claim_id,
                    player_id=d.player_id,
                    amount=d.amount,
                    destination=d.destination,
                    idempotency_key=d.idempotency_key,
                    requested_by=d.requested_by,
                    provider=None,
                    correlation_id=f"corr-{d.idempotency_key}",
                )
            )
        async with parts.uow() as books:
            await parts.create.execute(books, commands)
    finally:
        await parts.runtime.engine.dispose()


def _spawn(settings: PayoutsSettings, worker_id: str, **env: str) -> Process:
    full = {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_SUFFIX": settings.kafka_topic_suffix,
        "PAYOUTS_PROVIDERS_FILE": str(settings.payouts_providers_file),
        "PAYOUTS_WORKER_INTERVAL_MS": "20",
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    # output to a file beside the providers file: a pipe nobody reads fills up and blocks the worker
    log = settings.payouts_providers_file.parent / f"worker-{worker_id}.log"
    return python_module("prizeflow_payouts", "worker", worker_id, env=full, log=log).spawn()


def _local_tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (its PostgreSQL sessions among them), from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _queued_on_payouts(db: str, procs: list[Process]) -> list[bool]:
    """For each worker process: has one of its sessions been waiting for the payouts table's lock?"""
    rows = await fetch(
        db,
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.relation = 'payouts'::regclass AND NOT l.granted "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    waiting = {int(r["client_port"]) for r in rows if r["client_port"] is not None}
    return [p.proc is not None and bool(waiting & _local_tcp_ports(p.proc.pid)) for p in procs]


async def _states(db: str) -> dict[str, int]:
    rows = await fetch(db, "SELECT state, count(*) AS n FROM payouts GROUP BY state")
    return {r["state"]: int(r["n"]) for r in rows}


async def test_two_worker_processes_never_submit_one_payout_twice(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    await _create(settings, [f"success:p{i}" for i in range(1000)])
    assert await _states(db) == {"approved": 1000}
    # Both workers must race for the same rows: a slow start of one (a loaded machine) would let the other pay all
    # 1,000 alone. The payouts table stays locked until each worker process has a session queued on it.
    gate = await asyncpg.connect(asyncpg_dsn(db))
    gate_tx = gate.transaction()
    await gate_tx.start()
    await gate.execute("LOCK TABLE payouts IN EXCLUSIVE MODE")
    procs = [
        _spawn(settings, "w1", PAYOUTS_WORKER_BATCH_SIZE="25"),
        _spawn(settings, "w2", PAYOUTS_WORKER_BATCH_SIZE="25"),
    ]
    try:
        try:
            await eventually(lambda: _queued_on_payouts(db, procs), all, timeout=120)
        finally:
            await gate_tx.rollback()
            await gate.close()
        final = await eventually(lambda: _states(db), lambda s: s == {"paid": 1000}, timeout=120, interval=0.2)
    finally:
        stop_all(procs, timeout=20)
    assert final == {"paid": 1000}
    calls = await fetch(
        db,
        "SELECT min(create_calls) AS lo, max(create_calls) AS hi, count(*) AS n, sum(sync_calls) AS syncs "
        "FROM sandbox.calls",
    )
    assert dict(calls[0]) == {"lo": 1, "hi": 1, "n": 1000, "syncs": 0}  # each payout submitted exactly once
    transfers = await fetch(db, "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM sandbox.transfers")
    assert dict(transfers[0]) == {"n": 1000, "keys": 1000}  # ... and executed exactly once
    workers = await fetch(db, "SELECT worker, count(*) AS n FROM payout_attempts GROUP BY worker ORDER BY worker")
    assert [r["worker"] for r in workers] == ["w1", "w2"]  # both did real work
    assert sum(int(r["n"]) for r in workers) == 1000


async def test_a_crashed_workers_rows_are_taken_over_after_the_lease_and_paid_once(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    scenarios = {"crawl": {"outcome": "slow", "latency_ms": 4000}}
    settings = settings_for(
        db, kafka_bootstrap, providers_file(tmp_path, scenarios=scenarios), topic_suffix=topic_suffix
    )
    await _create(settings, [f"crawl:p{i}" for i in range(20)])
    lease = {"PAYOUTS_LEASE_SECONDS": "3", "PAYOUTS_PROVIDER_TIMEOUT_MS": "8000"}
    first = _spawn(settings, "doomed", **lease)
    try:
        # (the process starts first: tens of seconds on a loaded 2-core machine)
        await eventually(lambda: _states(db), lambda s: s.get("submitting") == 20, timeout=90, interval=0.05)
        first.kill()  # SIGKILL while the provider calls are in flight
    finally:
        first.stop(timeout=20)
    await asyncio.sleep(0)  # the rows are now leased to a dead worker
    second = _spawn(settings, "rescuer", **lease)
    try:
        final = await eventually(lambda: _states(db), lambda s: s == {"paid": 20}, timeout=180, interval=0.2)
    finally:
        second.stop(timeout=20)
    assert final == {"paid": 20}
    transfers = await fetch(db, "SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM sandbox.transfers")
    assert dict(transfers[0]) == {"n": 20, "keys": 20}
    resumed = await fetch(
        db, "SELECT count(*) AS n FROM payout_history WHERE from_state = 'submitting' AND to_state = 'submitting'"
    )
    assert resumed[0]["n"] == 20  # every one was resumed by the rescuer after the lease expired
    attempts = await fetch(db, "SELECT DISTINCT worker, kind FROM payout_attempts")
    assert {(r["worker"], r["kind"]) for r in attempts} <= {("rescuer", "sync"), ("rescuer", "create")}
