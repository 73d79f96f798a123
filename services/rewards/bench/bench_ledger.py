"""Ledger throughput: transfers/s applied in linked batches vs a plain batched INSERT of the same rows.

Runs against real PostgreSQL (devstack, or DATABASE_URL / an admin URL given with --admin-url). Prints one
JSON document. The baseline inserts the same rows into a copy of `ledger_transfers` with the same indexes
(`LIKE ... INCLUDING ALL`) with one unnest INSERT per batch: what the ledger adds on top of it is account
locking, idempotency, flag checks and balance updates.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from prizeflow_rewards.adapters.ledger_pg import SqlLedger
from prizeflow_rewards.domain.ledger import AccountKind, AccountRef, Transfer, TransferKind
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_testkit.bench import bench_database, print_result

ALEMBIC_INI = str(Path(__file__).resolve().parents[1] / "alembic.ini")

_BASELINE_INSERT = text(
    """
    INSERT INTO bench_baseline
        (id, debit_account_id, credit_account_id, asset, amount, kind, flags, pending_id, business_key)
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:debits AS uuid[]), CAST(:credits AS uuid[]),
                         CAST(:assets AS text[]), CAST(:amounts AS bigint[]), CAST(:kinds AS text[]),
                         CAST(:flags AS int[]), CAST(:pendings AS uuid[]), CAST(:keys AS text[]))
    """
)


def make_batches(n_batches: int, batch_size: int, n_wallets: int, seed: int, tag: str) -> list[list[Transfer]]:
    """Rounds: a pool pays `batch_size` distinct wallets per linked batch (the settlement flow)."""
    rng = random.Random(seed)
    pools = [AccountRef(AccountKind.CAMPAIGN_POOL, f"bench-camp-{i}", "USDC") for i in range(4)]
    batches = []
    for b in range(n_batches):
        pool = pools[b % len(pools)]
        players = rng.sample(range(n_wallets), batch_size)
        batches.append(
            [
                Transfer.of(
                    pool,
                    AccountRef(AccountKind.PLAYER_WALLET, f"bench-p-{p}", "USDC"),
                    rng.randint(1, 1000),
                    TransferKind.REWARD,
                    f"bench-{tag}-round-{b}",
                    p,
                )
                for p in players
            ]
        )
    return batches


async def run(database_url: str, n_batches: int, batch_size: int, n_wallets: int) -> dict[str, object]:
    await upgrade_to_head(ALEMBIC_INI, database_url)
    engine = create_engine(database_url, pool_size=2)
    ledger = SqlLedger
    treasury = AccountRef(AccountKind.TREASURY, "platform", "USDC")
    warmup = make_batches(4, batch_size, n_wallets, seed=1, tag="warmup")
    batches = make_batches(n_batches, batch_size, n_wallets, seed=2, tag="timed")
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS bench_baseline"))
        await conn.execute(text("CREATE TABLE bench_baseline (LIKE ledger_transfers INCLUDING ALL)"))
        pools = {t.debit for b in warmup + batches for t in b}
        await ledger(conn).apply(
            [Transfer.of(treasury, p, 10**15, TransferKind.CAMPAIGN_FUNDING, p.owner, "bench") for p in pools],
        )
    for b in warmup:  # creates the wallets and warms the caches: not timed
        async with engine.begin() as conn:
            await ledger(conn).apply(b)

    # Ledger and baseline batches alternate, so both see the same machine load (other processes, autovacuum).
    ledger_s = baseline_s = 0.0
    for b in batches:
        started = time.perf_counter()
        async with engine.begin() as conn:
            await ledger(conn).apply(b)
        ledger_s += time.perf_counter() - started
        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(
                _BASELINE_INSERT,
                {
                    "ids": [uuid.uuid4() for _ in b],
                    "debits": [t.debit.id for t in b],
                    "credits": [t.credit.id for t in b],
                    "assets": [t.asset for t in b],
                    "amounts": [t.amount for t in b],
                    "kinds": [t.kind.value for t in b],
                    "flags": [t.bits for t in b],
                    "pendings": [t.pending_id for t in b],
                    "keys": [t.business_key for t in b],
                },
            )
        baseline_s += time.perf_counter() - started

    async with engine.connect() as conn:
        zero = (
            await conn.execute(text("SELECT sum(credits_posted - debits_posted) FROM ledger_accounts"))
        ).scalar_one()
    await engine.dispose()
    total = n_batches * batch_size
    ledger_tps = total / ledger_s
    baseline_tps = total / baseline_s
    return {
        "bench": "ledger_postings",
        "transfers": total,
        "batch_size": batch_size,
        "wallets": n_wallets,
        "transfers_per_s": round(ledger_tps),
        "baseline_inserts_per_s": round(baseline_tps),
        "ratio": round(ledger_tps / baseline_tps, 3),
        "goal_transfers_per_s": 10_000,
        "goal_ratio": 0.5,
        # issue #20's goal, beside the first one
        "goal_at_scale": {
            "transfers_per_s": 40_000,
            "ratio": 0.8,
            "met": ledger_tps >= 40_000 and ledger_tps / baseline_tps >= 0.8,
        },
        "sum_of_balances": int(zero),
        "pass": ledger_tps >= 10_000 and ledger_tps / baseline_tps >= 0.5 and int(zero) == 0,
        "cores": os.cpu_count(),
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    if args.database_url:
        return await run(args.database_url, args.batches, args.batch_size, args.wallets)
    from prizeflow_devstack.infra import ensure_infra

    async with bench_database(ensure_infra(), "bench_rewards") as url:
        return await run(url, args.batches, args.batch_size, args.wallets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--wallets", type=int, default=20_000)
    print_result(asyncio.run(main_async(parser.parse_args())), indent=None)


if __name__ == "__main__":
    main()
