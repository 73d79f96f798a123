"""Stellar payouts throughput: PayoutRequested on Kafka -> paid on the emulated ledger, through the signer.

Real processes on real Kafka + PostgreSQL from the devstack: the Soroban RPC emulator (1-second ledgers),
the signer (hot key backend: every operation of every transaction decoded and checked against its intent,
caps applied, signature verified) and the payouts service (`python -m prizeflow_payouts`: consumers, worker,
Stellar engine, outbox relay). 8 channel accounts, batches of up to 100 payments per transaction.

Prints JSON: payouts paid per ledger on the emulator's ledger (sustained = the ledgers between the first
and the last full-speed ones), payouts confirmed (state paid in the payouts database) per second, signatures
per second the signer produced during the run (each one checking up to 100 operations), cores, pass.

    uv run python services/payouts/bench/bench_stellar.py [--payouts 8000] [--channels 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from prizeflow_contracts.envelope import new_event
from prizeflow_contracts.events.payouts import PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_devstack.infra import ensure_infra
from prizeflow_soroban_emulator.client import Rpc
from prizeflow_testkit import fetch, python_module, stop_all
from prizeflow_testkit.bench import (
    bench_database,
    bench_producer,
    bench_topics,
    count,
    print_result,
    send_all,
    wait_count,
)
from prizeflow_testkit.stellar import (
    SIGNER_ALEMBIC_INI,
    Keys,
    Process,
    emulator_process,
    free_port,
    fund,
    signer_process,
    stellar_env,
    stellar_providers_file,
)

SERVICE_DIR = Path(__file__).resolve().parents[1]
GOAL_PER_LEDGER = 400


async def run(n: int, channels: int, destinations: int) -> dict[str, object]:
    infra = ensure_infra()
    with tempfile.TemporaryDirectory(prefix="bench-stellar-") as tmp:  # logs and config of this run
        async with (
            bench_database(infra, "bench_payouts", SERVICE_DIR / "alembic.ini") as payouts_url,
            bench_database(infra, "bench_signer", SIGNER_ALEMBIC_INI) as signer_url,
            bench_topics(infra.kafka_bootstrap) as suffix,  # the services verify their topics at start
        ):
            urls = (payouts_url, signer_url)
            return await measure(
                infra.kafka_bootstrap, urls, suffix, Path(tmp), n=n, channels=channels, destinations=destinations
            )


async def measure(
    bootstrap: str, urls: tuple[str, str], suffix: str, tmp: Path, *, n: int, channels: int, destinations: int
) -> dict[str, object]:
    """Start the emulator, the signer and payouts; drive them; measure: one linear script."""
    payouts_url, signer_url = urls
    tag = uuid.uuid4().hex[:8]
    keys = Keys.make(channels)
    procs: list[Process] = []
    try:
        emulator, rpc_url = emulator_process(
            tmp / "emulator.log", ledger_ms=1000, env={"SOROBAN_EMULATOR_LEDGER_CAPACITY": "5000"}
        )
        procs.append(emulator.start())
        rpc = Rpc(rpc_url)
        fund(rpc, keys)
        dests = []
        for _ in range(destinations):
            from stellar_sdk import Keypair

            kp = Keypair.random().public_key
            rpc.admin.create_account(kp, balances={"XLM": "1"})
            dests.append(kp)
        signer = signer_process(signer_url, bootstrap, suffix, keys, tmp / "signer.log", extra={"LOG_LEVEL": "WARNING"})
        procs.append(signer.start())
        port = free_port()
        providers = stellar_providers_file(tmp, validity_s=60, resign_after_s=10.0)
        env = {
            "DATABASE_URL": payouts_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC_SUFFIX": suffix,
            "HTTP_PORT": str(port),
            "PAYOUTS_PROVIDERS_FILE": str(providers),
            "PAYOUTS_LIVE_EXECUTION": "true",
            "PAYOUTS_WORKER_BATCH_SIZE": "1000",
            "PAYOUTS_WORKER_INTERVAL_MS": "50",
            "PAYOUTS_CONFIRM_POLL_MS": "250",
            "PAYOUTS_CONFIRM_MAX_POLLS": "200",
            "CONSUMER_BATCH_SIZE": "1000",
            "OUTBOX_BATCH_SIZE": "2000",
            "OUTBOX_POLL_INTERVAL_MS": "20",
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "false",
            **stellar_env(keys, rpc_url),
        }
        procs.append(python_module("prizeflow_payouts", env=env, log=tmp / "payouts.log", port=port).start())

        producer = bench_producer(bootstrap)
        await producer.start()
        topic = "prizeflow.payouts.requests.v1" + suffix
        t0 = time.time()
        events = []
        for i in range(n):
            key = f"bench-{i}-{tag}"
            event = new_event(
                PayoutRequested(
                    payout_request_id=f"pr-{key}",
                    claim_id=f"cl-{key}",
                    player_id=f"p-{i % 500}",
                    amount=Money(asset="XLM", amount=1_000_000 + i),
                    idempotency_key=key,
                    requested_by=f"p-{i % 500}",
                    destination=PayoutDestination(type=DestinationType.STELLAR_ACCOUNT, address=dests[i % len(dests)]),
                    requested_at=datetime.now(UTC),
                ),
                source="/prizeflow/bench",
                correlation_id=f"c-{key}",
            )
            events.append(event)
        await send_all(producer, topic, events)
        await producer.stop()
        final = "SELECT count(*) FROM payouts WHERE state IN ('paid', 'failed')"
        await wait_count(payouts_url, final, n, 900, interval=0.5, strict=False)  # a short run is reported as such
        paid_rows = await fetch(
            payouts_url, "SELECT extract(epoch FROM paid_at) AS t FROM payouts WHERE state = 'paid'"
        )
        failed = await count(payouts_url, "SELECT count(*) FROM payouts WHERE state = 'failed'")
        txs = await fetch(payouts_url, "SELECT state, cardinality(payout_ids) AS n FROM stellar_txs")
        signed = await fetch(
            signer_url, "SELECT extract(epoch FROM decided_at) AS t FROM signer_audit WHERE decision = 'signed'"
        )
        payments = rpc.admin.payments()
        per_ledger = Counter(p["ledger"] for p in payments)
        ledgers = sorted(per_ledger)
        # Sustained: drop the ramp-up ledger and the tail (the last batches of the run).
        window = [per_ledger[seq] for seq in range(ledgers[1], ledgers[-2] + 1)] if len(ledgers) > 4 else []
        sustained = statistics.mean(window) if window else 0.0
        paid_times = sorted(float(r["t"]) for r in paid_rows)
        elapsed = (paid_times[-1] - t0) if paid_times else float("nan")
        signed_times = sorted(float(r["t"]) for r in signed)
        sign_span = (signed_times[-1] - signed_times[0]) if len(signed_times) > 1 else float("nan")
        by_dest = Counter(p["destination"] for p in payments)
        return {
            "bench": "stellar_payouts_requested_to_paid",
            "payouts": n,
            "paid": len(paid_rows),
            "failed": failed,
            "ledger_payments": len(payments),
            "paid_twice": len(payments) - len(paid_rows),
            "channels": channels,
            "ledger_ms": 1000,
            "transactions": Counter(t["state"] for t in txs),
            "ops_per_tx_mean": round(statistics.mean(t["n"] for t in txs), 1) if txs else 0,
            "ledgers_with_payments": len(ledgers),
            "payouts_per_ledger_sustained": round(sustained, 1),
            "payouts_per_ledger_max": max(per_ledger.values()) if per_ledger else 0,
            "payouts_confirmed_per_s_end_to_end": round(len(paid_rows) / elapsed, 1) if paid_times else 0,
            "elapsed_s": round(elapsed, 1),
            "signer_signatures": len(signed_times),
            "signer_signatures_per_s_observed": round(len(signed_times) / sign_span, 1) if len(signed_times) > 1 else 0,
            "signer_ops_checked_per_s_observed": round(len(payments) / sign_span, 1) if len(signed_times) > 1 else 0,
            "destinations_max_payments": max(by_dest.values()) if by_dest else 0,
            "cores": os.cpu_count(),
            "goal_per_ledger": GOAL_PER_LEDGER,
            "pass": sustained >= GOAL_PER_LEDGER and len(payments) == len(paid_rows) == n,
        }
    finally:
        stop_all(reversed(procs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payouts", type=int, default=8000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--destinations", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(run(args.payouts, args.channels, args.destinations))
    print_result(result, indent=None)


if __name__ == "__main__":
    main()
