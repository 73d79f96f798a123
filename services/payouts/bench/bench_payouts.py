"""Payouts throughput: PayoutRequested on Kafka -> paid, sandbox provider (immediate success), auto-approval.

The service runs as its own process (`python -m prizeflow_payouts`: consumers, worker, outbox relay, HTTP) on
real Kafka + PostgreSQL from the devstack. The bench publishes N requests as fast as it can and waits until all
are paid. Prints JSON: payouts/s (first request sent -> last paid), p50/p99 latency requested -> paid, cores.

    uv run python services/payouts/bench/bench_payouts.py [--payouts 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import yaml
from aiokafka import AIOKafkaProducer

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.payouts import PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_devstack.infra import create_database, drop_database, ensure_infra
from prizeflow_devstack.ports import remembered_or_free
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import upgrade_to_head

SERVICE_DIR = Path(__file__).resolve().parents[1]


def providers(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "approvals": {"USDC": {"auto_below": "1000000", "dual_from": "10000000"}},
                "providers": [
                    {
                        "name": "sandbox",
                        "type": "sandbox",
                        "assets": ["USDC"],
                        "destination_types": ["sandbox"],
                        "options": {"default_scenario": "success"},
                    }
                ],
            }
        )
    )
    return path


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"service exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("service not ready in time")


async def run(n: int, workers: int) -> dict[str, object]:  # noqa: PLR0915 - one linear script: set up, drive, measure
    infra = ensure_infra()
    db_name = f"bench_payouts_{uuid.uuid4().hex[:8]}"
    url = await create_database(infra, db_name)
    suffix = "." + uuid.uuid4().hex[:10]
    tmp = Path(f"/tmp/{db_name}.yaml")  # noqa: S108 - a throwaway config for this run
    proc = None
    worker_procs: list[subprocess.Popen[bytes]] = []
    try:
        await upgrade_to_head(str(SERVICE_DIR / "alembic.ini"), url)
        port = remembered_or_free(None)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap,
            "KAFKA_TOPIC_SUFFIX": suffix,
            "HTTP_PORT": str(port),
            "PAYOUTS_PROVIDERS_FILE": str(providers(tmp)),
            "PAYOUTS_WORKER_BATCH_SIZE": "1000",
            "PAYOUTS_WORKER_INTERVAL_MS": "20",
            "CONSUMER_BATCH_SIZE": "1000",
            "OUTBOX_BATCH_SIZE": "2000",
            "DATABASE_POOL_SIZE": "10",
            "LOG_LEVEL": "WARNING",
            # workers > 0: the API process only consumes and relays; the worker runs as its own process(es)
            "PAYOUTS_WORKER_ENABLED": "false" if workers else "true",
        }
        proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter, started once before timing
            [
                sys.executable,
                *(["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []),
                "-m",
                "prizeflow_payouts",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_ready(port, proc)
        worker_procs = [
            subprocess.Popen(  # noqa: S603, ASYNC220 - our own interpreter, started once before timing
                [sys.executable, "-m", "prizeflow_payouts", "worker", f"bench-w{i}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=512 * 1024,
        )
        await producer.start()
        sent: dict[str, float] = {}
        topic = "prizeflow.payouts.requests.v1" + suffix
        t0 = time.time()
        futures = []
        for i in range(n):
            key = f"bench-{i}-{uuid.uuid4().hex[:6]}"
            env_ = new_event(
                PayoutRequested(
                    payout_request_id=f"pr-{key}",
                    claim_id=f"cl-{key}",
                    player_id=f"p-{i % 500}",
                    amount=Money(asset="USDC", amount=10_000_000),
                    idempotency_key=key,
                    requested_by=f"p-{i % 500}",
                    destination=PayoutDestination(type=DestinationType.SANDBOX, address=f"success:p{i}"),
                    requested_at=datetime.now(UTC),
                ),
                source="/prizeflow/bench",
                correlation_id=f"c-{key}",
            )
            sent[key] = time.time()
            futures.append(await producer.send(topic, env_.encode(), key=env_.key, headers=env_.headers()))
        await asyncio.gather(*futures)
        await producer.stop()
        publish_s = time.time() - t0
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            deadline = time.monotonic() + 600
            while True:
                paid = await conn.fetchval("SELECT count(*) FROM payouts WHERE state = 'paid'")
                if paid >= n or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            rows = await conn.fetch("SELECT idempotency_key, extract(epoch FROM paid_at) AS t FROM payouts")
            transfers = await conn.fetchval("SELECT count(*) FROM sandbox.transfers")
        finally:
            await conn.close()
        paid_at = {r["idempotency_key"]: float(r["t"]) for r in rows if r["t"] is not None}
        lat = sorted((paid_at[k] - sent[k]) * 1000 for k in paid_at)
        elapsed = max(paid_at.values()) - t0
        return {
            "bench": "payouts_requested_to_paid",
            "payouts": n,
            "paid": len(paid_at),
            "sandbox_transfers": transfers,
            "payouts_per_s": round(len(paid_at) / elapsed, 1),
            "elapsed_s": round(elapsed, 2),
            "publish_s": round(publish_s, 2),
            "p50_ms": round(statistics.median(lat), 1),
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1], 1),
            "cores": os.cpu_count(),
            "worker_processes": workers,
            "goal_per_s": 1000,
        }
    finally:
        for w in worker_procs:
            w.terminate()
            w.wait(timeout=30)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.unlink(missing_ok=True)
        await drop_database(infra, db_name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payouts", type=int, default=int(os.environ.get("BENCH_PAYOUTS", "20000")))
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=int(os.environ.get("BENCH_WORKER_PROCESSES", "1")),
        help="separate `python -m prizeflow_payouts worker` processes (0: the worker runs inside the API process)",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.payouts, args.worker_processes))))


if __name__ == "__main__":
    main()
