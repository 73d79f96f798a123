"""Payouts: PayoutRequested on Kafka -> paid, sandbox provider (immediate success), auto-approval (issue #5).

The service runs as its own process (`python -m prizeflow_payouts`: consumers, worker, outbox relay, HTTP) on
real Kafka + PostgreSQL from the devstack. Everything is measured on the real path: PayoutRequested in on Kafka
-> inbox, payout rows, approval -> worker claim -> sandbox provider -> paid -> outbox -> relay -> PayoutPaid out
on `prizeflow.payouts.events.v1`, which this script reads back like any downstream consumer. A payout counts as
paid when its PayoutPaid has been received from Kafka.

1. Throughput: N requests published as fast as possible; payouts/s = N / (first request sent -> last
   PayoutPaid received).
2. Latency: requests offered at half the measured rate for `--latency-seconds`; requested -> paid per payout =
   PayoutPaid received - request sent, p50/p99/max (and the same until the database says paid).
3. Exactly once: one sandbox transfer, one `paid` row and one PayoutPaid per request.

    uv run python services/payouts/bench/bench_payouts.py [--payouts 20000] [--latency-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from prizeflow_contracts.envelope import HEADER_ID, HEADER_TYPE, Envelope, new_event
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_devstack.infra import create_database, drop_database, ensure_infra
from prizeflow_devstack.ports import remembered_or_free
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_runtime.topics import delete_topics_with_suffix
from prizeflow_testkit import provision_test_topics

SERVICE_DIR = Path(__file__).resolve().parents[1]
GOAL_PER_S = 1_000  # issue #5: payouts/s requested -> paid on this 2-core machine
PAID_TYPE = PayoutPaid.event_type().encode()


def request(i: int, tag: str) -> tuple[str, Envelope[PayoutRequested]]:
    """A PayoutRequested under the auto-approval threshold for the sandbox provider (immediate success)."""
    key = f"{tag}-{i}-{uuid.uuid4().hex[:6]}"
    env = new_event(
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
    return env.correlationid, env


class PaidWatcher:
    """Reads `prizeflow.payouts.events.v1` like a downstream consumer: when did each PayoutPaid arrive.

    Only the `ce_type` header and the key (the request's correlation id) are read: cheap next to the service.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic,  # no group: every partition, from the beginning
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_wait_ms=20,
        )
        self.first_seen: dict[str, float] = {}  # correlation id -> time.time() of its first PayoutPaid
        self.records = 0
        self.event_ids: set[bytes] = set()  # distinct PayoutPaid event ids: exactly one per payout
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            for records in batches.values():
                for r in records:
                    headers = r.headers or ()
                    if (HEADER_TYPE, PAID_TYPE) in headers:
                        self.records += 1
                        self.event_ids.update(v for k, v in headers if k == HEADER_ID)
                        self.first_seen.setdefault((r.key or b"").decode(), now)

    async def wait(self, keys: list[str], timeout: float) -> float:
        """Until every payout is paid on Kafka; returns when the last PayoutPaid arrived."""
        deadline = time.monotonic() + timeout
        while True:
            missing = sum(1 for k in keys if k not in self.first_seen)
            if not missing:
                return max(self.first_seen[k] for k in keys)
            if self._task is not None and self._task.done():
                self._task.result()  # the watcher died: say why
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out: {missing} of {len(keys)} payouts never paid on Kafka")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q * len(sorted_ms)) - 1))]


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


async def run(n: int, workers: int, latency_seconds: float) -> dict[str, Any]:  # noqa: PLR0915 - one linear script: set up, drive, measure
    infra = ensure_infra()
    db_name = f"bench_payouts_{uuid.uuid4().hex[:8]}"
    url = await create_database(infra, db_name)
    suffix = "." + uuid.uuid4().hex[:10]
    tmp = Path(f"/tmp/{db_name}.yaml")  # noqa: S108 - a throwaway config for this run
    proc = None
    worker_procs: list[subprocess.Popen[bytes]] = []
    try:
        await upgrade_to_head(str(SERVICE_DIR / "alembic.ini"), url)
        await provision_test_topics(infra.kafka_bootstrap, suffix)  # the service verifies its topics at start
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
        watcher = PaidWatcher(infra.kafka_bootstrap, "prizeflow.payouts.events.v1" + suffix)
        await watcher.start()
        topic = "prizeflow.payouts.requests.v1" + suffix
        try:
            # 1. throughput: everything at once
            reqs = [request(i, "bench") for i in range(n)]
            t0 = time.time()
            futures = [await producer.send(topic, e.encode(), key=e.key, headers=e.headers()) for _, e in reqs]
            await asyncio.gather(*futures)
            publish_s = time.time() - t0
            keys = [k for k, _ in reqs]
            last_paid = await watcher.wait(keys, 600)
            rate = n / (last_paid - t0)

            # 2. latency at half the measured rate
            half = rate / 2
            total = max(1, int(half * latency_seconds))
            lat_reqs = [request(i, "lat") for i in range(total)]
            sent: dict[str, float] = {}
            tick = 0.02
            per_tick = max(1, round(half * tick))
            t1 = time.monotonic()
            for start in range(0, total, per_tick):
                chunk = lat_reqs[start : start + per_tick]
                now = time.time()
                futures = []
                for k, e in chunk:
                    sent[k] = now
                    futures.append(await producer.send(topic, e.encode(), key=e.key, headers=e.headers()))
                await asyncio.gather(*futures)
                pause = t1 + (start // per_tick + 1) * tick - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            offered_s = time.monotonic() - t1
            lat_keys = [k for k, _ in lat_reqs]
            await watcher.wait(lat_keys, 600)
            lat = sorted((watcher.first_seen[k] - sent[k]) * 1000 for k in lat_keys)
        finally:
            await watcher.stop()
            await producer.stop()
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            paid_rows = await conn.fetch(
                "SELECT correlation_id, extract(epoch FROM paid_at) AS t FROM payouts WHERE state = 'paid'"
            )
            transfers = await conn.fetchval("SELECT count(*) FROM sandbox.transfers")
        finally:
            await conn.close()
        db_paid = {r["correlation_id"]: float(r["t"]) for r in paid_rows}
        db_lat = sorted((db_paid[k] - sent[k]) * 1000 for k in lat_keys if k in db_paid)
        everything = n + total
        once = len(db_paid) == transfers == len(watcher.event_ids) == len(watcher.first_seen) == everything
        return {
            "bench": "payouts_requested_to_paid",
            "cores": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "worker_processes": workers,
            "goal": {"payouts_per_s": GOAL_PER_S},
            "throughput": {
                "payouts": n,
                "payouts_per_s": round(rate, 1),
                "elapsed_s": round(last_paid - t0, 2),
                "publish_s": round(publish_s, 2),
                "measured_until": "last PayoutPaid received from Kafka",
            },
            "latency_at_half_rate": {
                "payouts_per_s_offered": round(half),
                "payouts": total,
                "seconds": round(offered_s, 2),
                "requested_to_paid_on_kafka_ms_p50": round(percentile(lat, 0.5), 1),
                "requested_to_paid_on_kafka_ms_p99": round(percentile(lat, 0.99), 1),
                "requested_to_paid_on_kafka_ms_max": round(lat[-1], 1),
                "requested_to_paid_in_db_ms_p50": round(percentile(db_lat, 0.5), 1),
                "requested_to_paid_in_db_ms_p99": round(percentile(db_lat, 0.99), 1),
            },
            "exactly_once": {
                "payouts": everything,
                "paid_rows": len(db_paid),
                "sandbox_transfers": transfers,
                "payout_paid_events_distinct": len(watcher.event_ids),
                "payout_paid_received": len(watcher.first_seen),
                "payout_paid_records_on_kafka": watcher.records,
                "ok": once,
            },
            "pass": rate >= GOAL_PER_S and once,
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
        await delete_topics_with_suffix(infra.kafka_bootstrap, suffix)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payouts", type=int, default=int(os.environ.get("BENCH_PAYOUTS", "20000")))
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=int(os.environ.get("BENCH_WORKER_PROCESSES", "1")),
        help="separate `python -m prizeflow_payouts worker` processes (0: the worker runs inside the API process)",
    )
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(run(args.payouts, args.worker_processes, args.latency_seconds))
    t, lat = result["throughput"], result["latency_at_half_rate"]
    print(
        f"payouts: goal >= {GOAL_PER_S} payouts/s requested -> paid; measured {t['payouts_per_s']}/s "
        f"({'PASS' if result['pass'] else 'FAIL'}); requested->paid at {lat['payouts_per_s_offered']}/s offered: "
        f"p50 {lat['requested_to_paid_on_kafka_ms_p50']} ms, p99 {lat['requested_to_paid_on_kafka_ms_p99']} ms; "
        f"exactly once: {'ok' if result['exactly_once']['ok'] else 'VIOLATED'}; load {result['load_average']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
