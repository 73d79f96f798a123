"""Reconciliation: what one hourly run of one provider costs at 1 M payouts a day (issue 34).

One window of one provider holds `--payouts` paid payouts (41,667: 1 M a day in an hour), loaded with one
`INSERT ... SELECT generate_series` into a migrated payouts database on the devstack's real PostgreSQL, each with
the ledger posting rewards' `LedgerPosted` leaves (and its return for a returned one), and `--history-days` of older
paid payouts of the same provider beside them (1 M a day: the table the run's query reads is not only the window).
The provider is an in-process fake `ListsStatement` shaped like the Stripe rail's balance transactions: one PAYOUT
line per payout carrying our idempotency key, plus ~1 % FEE and REVERSAL lines (booked fees, returned payouts:
nothing to find), and `--discrepancies` injected differences (missing, amount, destination, duplicate,
unrequested: exactly one exception each). It pages its lines `--page-sizes` per page: 100 is Stripe's largest
`limit` on a list call (the statement adapter asks for 100), 1000 a rail that pages wider.

`Reconciliation.run` is timed exactly as the service builds it (`recon_transactions` on a session factory, the
service's default statement timeouts, the ledger compared unless `--no-ledger`), each run on a window of its own
and on new connections (a window already reconciled is the same run and returns at once: that re-run is measured
too). Per run: wall time, transactions (pages + 2), SQL statements, the time staging the pages (the fake's own
time shown apart) vs matching (split by store call, the in-memory matching as the rest), and the peak RSS of this
process during the run (VmHWM, reset before each run; `ru_maxrss` over the whole process too). Medians per page
size. The provider's network time is not in it: at Stripe each page is an HTTP call (add pages x its latency).

Then the run's query of our payouts is executed `--plan-cache-executions` times on one connection, as a long-lived
pool does hour after hour: PostgreSQL may switch a prepared statement to a generic plan after 5 executions.

    uv run python services/payouts/bench/bench_reconciliation.py [--payouts 41667] [--page-sizes 100 1000]
        [--runs 3] [--discrepancies 100] [--history-days 1] [--plan-cache-executions 7] [--no-ledger]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import resource
import statistics
import time
import uuid
from array import array
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from prizeflow_contracts.providers import (
    DestinationType,
    RewardPayoutProvider,
    StatementLine,
    StatementLineKind,
    StatementPage,
)
from prizeflow_devstack.infra import ensure_infra
from prizeflow_payouts.adapters.reconciliation_pg import SqlReconStore, recon_transactions
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.application.reconciliation import Reconciliation, ReconStore, ReconTransactions
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry
from prizeflow_payouts.application.transitions import ChangeBuilder, RetryPolicy
from prizeflow_payouts.domain.reconciliation import OurPayout
from prizeflow_runtime.db import asyncpg_dsn, create_engine, session_factory
from prizeflow_testkit.bench import bench_database, host, print_result

SERVICE_DIR = Path(__file__).resolve().parents[1]
PROVIDER: Final = "stripe"  # a configured provider name (providers.yaml)
ASSET: Final = "USD"
FEE: Final = 25  # minor units Stripe charged on a fee line's transfer (booked on the payout: no exception)
HOUR: Final = timedelta(hours=1)
BENCH_TERMS: Final = RailTerms(cancels=False, quotes=True, webhooks=True, confirms_later=False)
PER_DAY: Final = 1_000_000
KINDS: Final = ("missing", "amount", "destination", "duplicate", "unrequested")  # one exception each
DB_CALLS: Final = (
    "staged_lines",
    "our_payouts",
    "remembered",
    "ledger_adjustments",
    "chains",
    "remember",
    "open_exceptions",
    "answer",
    "finish_run",
)
GOAL_S: Final = 60.0
GOAL_RSS_MIB: Final = 1024.0

# Line variants of a payout's position in the statement (code = index * 8 + variant).
_PAYOUT, _FEE, _REVERSAL, _DUPLICATE, _UNREQUESTED = range(5)


@dataclass(frozen=True)
class Window:
    """One reconciled hour: `payouts` payouts paid in it, their statement, the differences injected into it.

    Everything is a function of (tag, number, index): the database rows (`LOAD`) and the statement lines name the
    same keys without either holding a list of them."""

    tag: str
    number: int
    since: datetime
    payouts: int
    discrepancies: int
    roles: Mapping[int, str] = field(init=False)
    codes: array[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        roles: dict[int, str] = {}
        step = self.payouts // max(1, self.discrepancies)
        for j in range(self.discrepancies):
            roles[j * step + step // 2] = KINDS[j % len(KINDS)]
        for i in range(0, self.payouts, 200):  # 0.5 % with a fee line, 0.5 % reversed: ~1 % more lines
            roles.setdefault(i, "fee")
            if i + 100 < self.payouts:
                roles.setdefault(i + 100, "reversal")
        codes: array[int] = array("q")
        for i in range(self.payouts):
            role = roles.get(i)
            if role != "missing":
                codes.append(i * 8 + _PAYOUT)
            extra = {"fee": _FEE, "reversal": _REVERSAL, "duplicate": _DUPLICATE, "unrequested": _UNREQUESTED}
            if role in extra:
                codes.append(i * 8 + extra[role])
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "codes", codes)

    @property
    def until(self) -> datetime:
        return self.since + HOUR

    def with_role(self, role: str) -> list[int]:
        return sorted(i for i, r in self.roles.items() if r == role)

    # -- what the run must find --------------------------------------------------------------------------------
    def expected(self) -> dict[str, int]:
        count = {k: len(self.with_role(k)) for k in KINDS}
        return {
            "lines": len(self.codes),
            "matched": self.payouts - count["missing"] - count["amount"] - count["destination"] - count["duplicate"],
            "exceptions": sum(count.values()),
        }

    # -- identifiers (the same in `LOAD`) ----------------------------------------------------------------------
    def key(self, i: int) -> str:
        digest = hashlib.md5(f"{self.tag}:{self.number}:{i}".encode(), usedforsecurity=False).hexdigest()
        return f"payout:{uuid.UUID(digest)}"

    def payout_id(self, i: int) -> str:
        return f"po_{self.tag}_{self.number}_{i}"

    def transfer(self, i: int) -> str:
        return f"tr_{self.tag}_{self.number}_{i}"

    @staticmethod
    def amount(i: int) -> int:
        return 100 + (i * 7919) % 100_000

    @staticmethod
    def destination(i: int) -> str:
        return f"acct_{i % 50_000:016d}"

    def paid_at(self, i: int) -> datetime:
        return self.since + timedelta(seconds=i * 3600.0 / self.payouts)

    def ours(self, i: int) -> OurPayout:
        """Payout `i` as the store reads it back (what `LOAD` inserts)."""
        role = self.roles.get(i)
        return OurPayout(
            payout_id=self.payout_id(i),
            idempotency_key=self.key(i),
            provider_ref=self.transfer(i),
            state="returned" if role == "reversal" else "paid",
            asset=ASSET,
            amount=self.amount(i),
            destination=self.destination(i),
            fee_asset=ASSET if role == "fee" else None,
            fee_amount=FEE if role == "fee" else None,
            paid_at=self.paid_at(i),
        )

    # -- the statement -----------------------------------------------------------------------------------------
    def line(self, code: int) -> StatementLine:
        """Shaped like the Stripe rail's lines (adapters/stripe/statement.py): `created` in whole seconds."""
        i, variant = divmod(code, 8)
        role = self.roles.get(i)
        at = self.since + timedelta(seconds=i * 3600 // self.payouts)
        later = min(at + timedelta(seconds=60), self.until - timedelta(seconds=1))
        txn = f"txn_{self.tag}_{self.number}_{i}"
        ours: dict[str, Any] = {"reference": self.key(i), "provider_ref": self.transfer(i)}
        if variant == _FEE:
            return StatementLine(
                line_id=f"{txn}:fee", kind=StatementLineKind.FEE, occurred_at=at, asset=ASSET, amount=FEE, **ours
            )
        if variant == _REVERSAL:
            return StatementLine(
                line_id=f"{txn}_r",
                kind=StatementLineKind.REVERSAL,
                occurred_at=later,
                asset=ASSET,
                amount=self.amount(i),
                destination=self.destination(i),
                raw_type="transfer_refund",
                **ours,
            )
        if variant == _UNREQUESTED:
            return StatementLine(
                line_id=f"{txn}_u",
                kind=StatementLineKind.PAYOUT,
                occurred_at=later,
                asset=ASSET,
                amount=1_234,
                provider_ref=f"tr_unknown_{self.tag}_{self.number}_{i}",
                destination=f"acct_unknown_{i}",
                raw_type="transfer",
            )
        return StatementLine(
            line_id=f"{txn}_d" if variant == _DUPLICATE else txn,
            kind=StatementLineKind.PAYOUT,
            occurred_at=later if variant == _DUPLICATE else at,
            asset=ASSET,
            amount=self.amount(i) + (1 if role == "amount" and variant == _PAYOUT else 0),
            destination=f"acct_elsewhere_{i}" if role == "destination" else self.destination(i),
            raw_type="transfer",
            **ours,
        )


class FakeStatement:
    """`ListsStatement` over a `Window`, `page_size` lines a page, the cursor the next position (opaque to the
    caller, as Stripe's `starting_after`). Lines are built per page, as a rail parses one listing response; the
    time spent building them is kept apart (`seconds`)."""

    def __init__(self, window: Window, page_size: int) -> None:
        self.window = window
        self.page_size = page_size
        self.calls = 0
        self.seconds = 0.0

    async def statement(self, since: datetime, until: datetime, cursor: str | None = None) -> StatementPage:
        started = time.perf_counter()
        self.calls += 1
        start = int(cursor) if cursor is not None else 0
        end = min(start + self.page_size, len(self.window.codes))
        lines = tuple(
            line
            for line in (self.window.line(code) for code in self.window.codes[start:end])
            if since <= line.occurred_at < until
        )
        page = StatementPage(lines=lines, next_cursor=str(end) if end < len(self.window.codes) else None)
        self.seconds += time.perf_counter() - started
        return page


# -- the data ------------------------------------------------------------------------------------------------

LOAD: Final = """
WITH s AS (
    SELECT $1::text AS t, n / $5::int + $9::int AS w, n % $5::int AS i,
           $4::timestamptz + (n / $5::int) * interval '1 hour'
           + make_interval(secs => (n % $5::int) * 3600.0 / $5::int) AS paid
    FROM generate_series(0, $5::int * $10::int - 1) AS n
), p AS (
    INSERT INTO payouts (
        id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, asset, amount,
        destination_type, destination_address, provider_type, provider_name, state, approval_policy, correlation_id,
        attempts, max_attempts, available_at, provider_ref, fee_asset, fee_amount, created_at, updated_at,
        submitted_at, paid_at, finished_at)
    SELECT 'po_' || t || '_' || w || '_' || i, 'pr_' || t || '_' || w || '_' || i,
           'payout:' || md5(t || ':' || w || ':' || i)::uuid, 'h', 'cl_' || t || '_' || w || '_' || i,
           'p_' || (i % 100000), 'p_' || (i % 100000), $2::text, 100 + (i * 7919) % 100000,
           'stripe_account', 'acct_' || lpad((i % 50000)::text, 16, '0'), 'stripe', $3::text,
           CASE WHEN i = ANY($6::int[]) THEN 'returned' ELSE 'paid' END, 'auto', 'c_' || t || '_' || w || '_' || i,
           1, 5, paid - interval '30 seconds', 'tr_' || t || '_' || w || '_' || i,
           CASE WHEN i = ANY($7::int[]) THEN $2::text END, CASE WHEN i = ANY($7::int[]) THEN $8::bigint END,
           paid - interval '30 seconds', paid, paid - interval '1 second', paid, paid
    FROM s
    RETURNING id, claim_id, asset, amount, state, paid_at
)
INSERT INTO ledger_postings (transfer_id, kind, provider_type, asset, amount, claim_id, payout_id, posted_at)
SELECT 'lt_' || id, 'payout', 'stripe', asset, amount, claim_id, id, paid_at FROM p
UNION ALL
SELECT 'lt_r_' || id, 'return', 'stripe', asset, amount, claim_id, id, paid_at + interval '1 minute' FROM p
WHERE state = 'returned'
"""


async def load(dsn: str, first: Window, hours: int, *, special: bool) -> float:
    """`hours` windows of `first.payouts` payouts from `first` on, each with what the ledger booked for it (rewards'
    `LedgerPosted`: the payout, and its return for a returned one), in one statement (the BEFORE INSERT trigger that
    serializes a claim's request against its refusal is off meanwhile: it takes an advisory lock per row, more than
    one transaction's lock table holds); then ANALYZE. Seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute("ALTER TABLE payouts DISABLE TRIGGER payouts_claim_not_refused")
            await conn.execute(
                LOAD,
                first.tag,
                ASSET,
                PROVIDER,
                first.since,
                first.payouts,
                first.with_role("reversal") if special else [],
                first.with_role("fee") if special else [],
                FEE,
                first.number,
                hours,
            )
            await conn.execute("ALTER TABLE payouts ENABLE TRIGGER payouts_claim_not_refused")
        await conn.execute("ANALYZE payouts, ledger_postings")
    finally:
        await conn.close()
    return time.perf_counter() - started


# -- measuring -----------------------------------------------------------------------------------------------


@dataclass
class Timings:
    """One run's time by store call, its transactions by kind, and where its phases start and end."""

    calls: dict[str, float] = field(default_factory=dict)
    transactions: dict[str, int] = field(default_factory=dict)
    commit: dict[str, float] = field(default_factory=dict)
    staged_until: float = 0.0
    match_from: float = 0.0
    match_until: float = 0.0

    def add(self, bucket: dict[str, float], name: str, seconds: float) -> None:
        bucket[name] = bucket.get(name, 0.0) + seconds


class _TimedStore:
    """The store, each coroutine method timed."""

    def __init__(self, inner: ReconStore, timings: Timings) -> None:
        self._inner = inner
        self._timings = timings
        self.seen: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                self._timings.add(self._timings.calls, name, time.perf_counter() - started)
                self.seen.add(name)

        return timed


def timed(opener: ReconTransactions, timings: Timings) -> ReconTransactions:
    """`opener`'s transactions, timed: each by what it did (claim, stage, match), its commit apart."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[ReconStore]:
        entered = time.perf_counter()
        async with opener() as store:
            proxy = _TimedStore(store, timings)
            yield cast("ReconStore", proxy)
            body_done = time.perf_counter()
        done = time.perf_counter()
        kind = "match" if "staged_lines" in proxy.seen else "stage" if "stage_page" in proxy.seen else "claim"
        timings.transactions[kind] = timings.transactions.get(kind, 0) + 1
        timings.add(timings.commit, kind, done - body_done)
        if kind == "stage":
            timings.staged_until = done
        elif kind == "match":
            timings.match_from, timings.match_until = entered, done

    def open_one() -> AbstractAsyncContextManager[ReconStore]:
        return transaction()

    return open_one


def _status_kib(field_name: str) -> int:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith(field_name + ":"):
            return int(row.split()[1])
    return 0


def reset_peak_rss() -> None:
    """Linux: VmHWM back to the current RSS (`clear_refs` 5), so the next read is this run's peak."""
    Path("/proc/self/clear_refs").write_text("5")


def mib(kib: float) -> float:
    return round(kib / 1024, 1)


@dataclass
class Bench:
    """The database the runs share, and the SQL statements sent through the service's engine so far."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    dsn: str
    ledger: bool = True
    statements: int = 0

    def reconciliation(self, fake: FakeStatement, timings: Timings) -> Reconciliation:
        """`Reconciliation` as the service builds it, `fake` the only configured provider."""
        entry = ProviderEntry(
            name=PROVIDER,
            # reconciliation only lists its statement
            rail=Rail(cast("RewardPayoutProvider", fake), BENCH_TERMS, statement=fake),
            assets=(ASSET,),
            destination_types=(DestinationType.STRIPE_ACCOUNT,),
        )
        return Reconciliation(
            transactions=timed(recon_transactions(self.sessions), timings),
            registry=ProviderRegistry([entry]),
            builder=ChangeBuilder(source="/prizeflow/bench", policy=RetryPolicy()),
            service="payouts",
            source="/prizeflow/bench",
            ledger=self.ledger,
        )

    async def one_run(self, window: Window, page_size: int) -> dict[str, Any]:
        # New connections: a connection that has run the window query 5 times may have switched to a generic plan
        # (see `plan_cache`), and one run is measured here, not that.
        await self.engine.dispose()
        fake = FakeStatement(window, page_size)
        timings = Timings()
        recon = self.reconciliation(fake, timings)
        reset_peak_rss()
        rss_before = _status_kib("VmRSS")
        statements_before = self.statements
        started = time.perf_counter()
        run_id = await recon.run(PROVIDER, window.since, window.until, requested_by="bench")
        wall = time.perf_counter() - started
        peak = _status_kib("VmHWM")
        statements = self.statements - statements_before
        conn = await asyncpg.connect(self.dsn)
        try:
            row = await conn.fetchrow("SELECT state, lines, matched, exceptions FROM recon_runs WHERE id = $1", run_id)
            opened = await conn.fetchval("SELECT count(*) FROM recon_exceptions WHERE run_id = $1", run_id)
            staged_left = await conn.fetchval("SELECT count(*) FROM recon_run_lines WHERE run_id = $1", run_id)
        finally:
            await conn.close()
        got = {"lines": row["lines"], "matched": row["matched"], "exceptions": row["exceptions"]}
        expected = window.expected()
        calls, commit = timings.calls, timings.commit
        match_s = timings.match_until - timings.match_from
        in_db = sum(calls.get(k, 0.0) for k in DB_CALLS)
        return {
            "window": window.number,
            "page_size": page_size,
            "wall_s": round(wall, 3),
            "pages": fake.calls,
            "transactions": sum(timings.transactions.values()),
            "transactions_by_kind": timings.transactions,
            "sql_statements": statements,
            "staging_s": round(timings.staged_until - started, 3),
            "staging": {
                "fake_provider_building_pages_s": round(fake.seconds, 3),
                "claim_run_s": round(calls.get("claim_run", 0.0), 3),
                "stage_page_s": round(calls.get("stage_page", 0.0), 3),
                "commits_s": round(commit.get("stage", 0.0) + commit.get("claim", 0.0), 3),
            },
            "matching_s": round(match_s, 3),
            "matching": {
                "staged_lines_read_and_parsed_s": round(calls.get("staged_lines", 0.0), 3),
                "our_payouts_query_s": round(calls.get("our_payouts", 0.0), 3),
                "remembered_lines_s": round(calls.get("remembered", 0.0), 3),
                "ledger_adjustments_s": round(calls.get("ledger_adjustments", 0.0), 3),
                "chains_s": round(calls.get("chains", 0.0), 3),
                "reconcile_in_memory_s": round(match_s - in_db - commit.get("match", 0.0), 3),
                "remember_lines_s": round(calls.get("remember", 0.0), 3),
                "open_exceptions_s": round(calls.get("open_exceptions", 0.0) + calls.get("answer", 0.0), 3),
                "finish_run_and_drop_staged_s": round(calls.get("finish_run", 0.0), 3),
                "commit_s": round(commit.get("match", 0.0), 3),
            },
            "rss_before_mib": mib(rss_before),
            "peak_rss_mib": mib(peak),
            "peak_rss_growth_mib": mib(peak - rss_before),
            "found": got,
            "expected": expected,
            "exceptions_rows": opened,
            "staged_lines_left": staged_left,
            "correct": row["state"] == "completed"
            and got == expected
            and opened == expected["exceptions"]
            and staged_left == 0,
            "load_average_after": host()["load_average"],
        }

    async def rerun(self, window: Window) -> dict[str, Any]:
        """The same window again: the completed run is found and returned."""
        fake = FakeStatement(window, 100)
        timings = Timings()
        recon = self.reconciliation(fake, timings)
        before = self.statements
        started = time.perf_counter()
        await recon.run(PROVIDER, window.since, window.until, requested_by="bench")
        return {
            "wall_ms": round((time.perf_counter() - started) * 1000, 1),
            "transactions": sum(timings.transactions.values()),
            "sql_statements": self.statements - before,
            "provider_calls": fake.calls,
        }

    async def plan_cache(self, window: Window, executions: int) -> dict[str, Any]:
        """The run's query of our payouts (`SqlReconStore.our_payouts`, with this window's keys) executed again and
        again on one connection, as the service's pool does hour after hour: PostgreSQL plans a prepared statement
        for its parameters 5 times, then may keep a generic plan that does not know the arrays' sizes."""
        await self.engine.dispose()
        lines = [window.line(code) for code in window.codes]
        keys = sorted({line.reference for line in lines if line.reference})
        refs = sorted({line.provider_ref for line in lines if line.provider_ref})
        seconds: list[float] = []
        failed: str | None = None
        async with self.sessions() as session, session.begin():
            store = SqlReconStore(session)
            for _ in range(executions):
                started = time.perf_counter()
                try:
                    await store.our_payouts(PROVIDER, window.since, window.until, keys, refs, with_ledger=self.ledger)
                except DBAPIError as err:
                    failed = f"execution {len(seconds) + 1}: {str(err.orig).splitlines()[0]}"
                    seconds.append(round(time.perf_counter() - started, 2))
                    break
                seconds.append(round(time.perf_counter() - started, 2))
            if failed is not None:
                await session.rollback()
        return {"executions_on_one_connection_s": seconds, "failed": failed}


def median(runs: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
    return round(statistics.median(pick(r) for r in runs), 3)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def part(section: str) -> dict[str, float]:
        return {k: round(statistics.median(r[section][k] for r in runs), 3) for k in runs[0][section]}

    return {
        "runs": len(runs),
        "wall_s_median": median(runs, lambda r: r["wall_s"]),
        "wall_s_min_max": [min(r["wall_s"] for r in runs), max(r["wall_s"] for r in runs)],
        "pages": runs[0]["pages"],
        "transactions": runs[0]["transactions"],
        "sql_statements_median": median(runs, lambda r: r["sql_statements"]),
        "staging_s_median": median(runs, lambda r: r["staging_s"]),
        "staging_median": part("staging"),
        "matching_s_median": median(runs, lambda r: r["matching_s"]),
        "matching_median": part("matching"),
        "peak_rss_mib_median": median(runs, lambda r: r["peak_rss_mib"]),
        "peak_rss_growth_mib_median": median(runs, lambda r: r["peak_rss_growth_mib"]),
        "all_correct": all(r["correct"] for r in runs),
    }


async def measure(bench: Bench, args: argparse.Namespace, window: Callable[[int, int], Window]) -> dict[str, Any]:
    """A warm-up window (1 %), then `runs` windows per page size, each loaded just before its run, and the last
    one run again."""
    warm = window(0, max(1000, args.payouts // 100))
    await load(bench.dsn, warm, 1, special=True)
    warm_up = await bench.one_run(warm, args.page_sizes[0])
    by_size: dict[str, Any] = {}
    loads: list[float] = []
    all_runs: list[dict[str, Any]] = []
    number = 1
    for size in args.page_sizes:
        runs = []
        for _ in range(args.runs):
            w = window(number, args.payouts)
            number += 1
            loads.append(await load(bench.dsn, w, 1, special=True))
            runs.append(await bench.one_run(w, size))
        by_size[str(size)] = summary(runs)
        all_runs.extend(runs)
    again = await bench.rerun(window(number - 1, args.payouts))
    plan_cache = await bench.plan_cache(window(number - 1, args.payouts), args.plan_cache_executions)
    conn = await asyncpg.connect(bench.dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM payouts")
        table_mib = await conn.fetchval("SELECT pg_total_relation_size('payouts') / 1048576")
    finally:
        await conn.close()
    return {
        "table": {"payouts_rows": rows, "payouts_mib_with_indexes": table_mib},
        "window_load_s_median": round(statistics.median(loads), 1),
        "warm_up": {"payouts": warm.payouts, "wall_s": warm_up["wall_s"], "correct": warm_up["correct"]},
        "by_page_size": by_size,
        "rerun_of_a_completed_window": again,
        "plan_cache": plan_cache,
        "runs": all_runs,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    infra = ensure_infra()
    tag = uuid.uuid4().hex[:6]
    windows_needed = 1 + len(args.page_sizes) * args.runs  # a warm-up, then the measured ones
    hours = args.history_days * 24
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - (windows_needed + 1) * HOUR

    def window(number: int, payouts: int) -> Window:
        return Window(tag, number, base + number * HOUR, payouts, args.discrepancies if number >= 0 else 0)

    async with bench_database(infra, "bench_recon", SERVICE_DIR / "alembic.ini") as url:
        dsn = asyncpg_dsn(url)
        history_s = await load(dsn, window(-hours, PER_DAY // 24), hours, special=False) if hours else 0.0
        engine = create_engine(url, pool_size=2)  # the service's timeouts (statement_timeout 60 s)
        bench = Bench(engine, session_factory(engine), dsn, ledger=args.ledger)

        def count(*_: Any) -> None:
            bench.statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            measured = await measure(bench, args, window)
        finally:
            await engine.dispose()
    by_size = measured["by_page_size"]
    worst = max(s["wall_s_median"] for s in by_size.values())
    worst_rss = max(s["peak_rss_mib_median"] for s in by_size.values())
    return {
        "bench": "reconciliation_hourly_run",
        **host(),
        "scenario": {
            "provider": PROVIDER,
            "payouts_in_window": args.payouts,
            "statement_lines_in_window": window(1, args.payouts).expected()["lines"],
            "discrepancies": args.discrepancies,
            "history_days": args.history_days,
            "ledger_compared": args.ledger,
            "history_load_s": round(history_s, 1),
        },
        **measured,
        "process_peak_rss_mib": mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
        "goal": {"wall_s_under": GOAL_S, "peak_rss_mib_under": GOAL_RSS_MIB},
        "pass": worst < GOAL_S
        and worst_rss < GOAL_RSS_MIB
        and all(s["all_correct"] for s in by_size.values())
        and measured["plan_cache"]["failed"] is None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--payouts", type=int, default=-(-PER_DAY // 24), help="payouts paid in the window")
    parser.add_argument("--page-sizes", type=int, nargs="+", default=[100, 1000], help="statement lines per page")
    parser.add_argument("--runs", type=int, default=3, help="runs per page size (each its own window)")
    parser.add_argument("--discrepancies", type=int, default=100, help="injected differences per window")
    parser.add_argument("--history-days", type=int, default=1, help="older paid payouts in the table (1 M a day)")
    parser.add_argument(
        "--plan-cache-executions",
        type=int,
        default=7,
        help="executions of the window query on one connection (PostgreSQL may go generic after 5; 0: none)",
    )
    parser.add_argument(
        "--no-ledger",
        dest="ledger",
        action="store_false",
        help="run as PAYOUTS_RECON_LEDGER=false (each payout's ledger postings are still read by the query)",
    )
    args = parser.parse_args()
    print_result(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
