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
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from prizeflow_contracts.envelope import Envelope, new_event
from prizeflow_contracts.events.payouts import PayoutPaid, PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_devstack.infra import ensure_infra
from prizeflow_devstack.ports import remembered_or_free
from prizeflow_testkit import Process, fetch, python_module, stop_all
from prizeflow_testkit.bench import (
    EventWatcher,
    bench_database,
    bench_producer,
    bench_topics,
    count,
    host,
    latency_ms,
    paced,
    print_result,
    send_all,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
GOAL_PER_S = 1_000  # issue #5: payouts/s requested -> paid on this 2-core machine


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


async def run(n: int, workers: int, latency_seconds: float) -> dict[str, Any]:
    infra = ensure_infra()
    with tempfile.TemporaryDirectory(prefix="bench-payouts-") as tmp:
        async with (
            bench_database(infra, "bench_payouts", SERVICE_DIR / "alembic.ini") as url,
            bench_topics(infra.kafka_bootstrap) as suffix,  # the service verifies its topics at start
        ):
            return await measure(
                infra.kafka_bootstrap, url, suffix, Path(tmp), n=n, workers=workers, latency_seconds=latency_seconds
            )


async def measure(
    bootstrap: str, url: str, suffix: str, tmp: Path, *, n: int, workers: int, latency_seconds: float
) -> dict[str, Any]:
    """Start the service, drive it, measure: one linear script."""
    port = remembered_or_free(None)
    env = {
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_TOPIC_SUFFIX": suffix,
        "HTTP_PORT": str(port),
        "PAYOUTS_PROVIDERS_FILE": str(providers(tmp / "providers.yaml")),
        "PAYOUTS_WORKER_BATCH_SIZE": "1000",
        "PAYOUTS_WORKER_INTERVAL_MS": "20",
        "CONSUMER_BATCH_SIZE": "1000",
        "OUTBOX_BATCH_SIZE": "2000",
        "DATABASE_POOL_SIZE": "10",
        "LOG_LEVEL": "WARNING",
        # workers > 0: the API process only consumes and relays; the worker runs as its own process(es)
        "PAYOUTS_WORKER_ENABLED": "false" if workers else "true",
    }
    profile = ["-m", "cProfile", "-o", os.environ["BENCH_PROFILE"]] if os.environ.get("BENCH_PROFILE") else []
    api = Process(
        [sys.executable, *profile, "-m", "prizeflow_payouts"],
        env,
        tmp / "payouts.log",
        f"http://127.0.0.1:{port}/health/ready",
    )
    procs = [api]
    try:
        api.start()  # started once, before timing
        for i in range(workers):
            worker = python_module("prizeflow_payouts", "worker", f"bench-w{i}", env=env, log=tmp / f"worker-{i}.log")
            procs.append(worker.spawn())
        producer = bench_producer(bootstrap)
        await producer.start()
        watcher = EventWatcher(bootstrap, "prizeflow.payouts.events.v1" + suffix, PayoutPaid, clock=time.time)
        await watcher.start()
        topic = "prizeflow.payouts.requests.v1" + suffix
        try:
            # 1. throughput: everything at once
            reqs = [request(i, "bench") for i in range(n)]
            t0 = time.time()
            await send_all(producer, topic, [e for _, e in reqs])
            publish_s = time.time() - t0
            keys = [k for k, _ in reqs]
            last_paid = await watcher.wait(keys, 600)
            rate = n / (last_paid - t0)

            # 2. latency at half the measured rate
            half = rate / 2
            total = max(1, int(half * latency_seconds))
            lat_reqs = [request(i, "lat") for i in range(total)]
            sent: dict[str, float] = {}
            t1 = time.monotonic()
            async for chunk in paced(lat_reqs, half):
                now = time.time()
                sent.update(dict.fromkeys((k for k, _ in chunk), now))
                await send_all(producer, topic, [e for _, e in chunk])
            offered_s = time.monotonic() - t1
            lat_keys = [k for k, _ in lat_reqs]
            await watcher.wait(lat_keys, 600)
            lat = sorted((watcher.first_seen[k] - sent[k]) * 1000 for k in lat_keys)
        finally:
            await watcher.stop()
            await producer.stop()
    finally:
        stop_all(reversed(procs))
    paid_rows = await fetch(
        url, "SELECT correlation_id, extract(epoch FROM paid_at) AS t FROM payouts WHERE state = 'paid'"
    )
    transfers = await count(url, "SELECT count(*) FROM sandbox.transfers")
    db_paid = {r["correlation_id"]: float(r["t"]) for r in paid_rows}
    db_lat = sorted((db_paid[k] - sent[k]) * 1000 for k in lat_keys if k in db_paid)
    everything = n + total
    once = len(db_paid) == transfers == len(watcher.event_ids) == len(watcher.first_seen) == everything
    return {
        "bench": "payouts_requested_to_paid",
        **host(),
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
            **latency_ms("requested_to_paid_on_kafka", lat),
            **latency_ms("requested_to_paid_in_db", db_lat, maximum=False),
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
    print_result(result, indent=None)


if __name__ == "__main__":
    main()
