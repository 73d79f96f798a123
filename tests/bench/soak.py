"""Soak (issue 20): the whole platform under a steady load for a long time, sampled; fails on a leak.

Every service runs as its own process (`Platform`) on the devstack's real PostgreSQL and Kafka. A generator
offers a steady load the way `bench_e2e.py` does: rounds through the game topic into settlement (each paying
eight players through rewards: eight allocations), and players' claims through rewards' API, paid out by the
sandbox provider (`prizeflow_testkit.platform_load`). Every
`--interval` seconds it samples each service's RSS, file descriptors and connections, every table's size, each
consumer group's lag and the window's closed → allocated and requested → paid p50/p99
(`prizeflow_testkit.soak_probes`); at the end `prizeflow_testkit.soak.judge` says whether the load was sustained
and whether anything rises after the warm-up (docs/soak.md).

Writes .results/soak/soak.json (every sample and the verdict) and .results/soak/soak.png, plus a timestamped
copy of both and the samples as JSON lines while the run goes (soak-<stamp>.samples.jsonl).
Exit 0: pass; 1: a leak, a rising p99 or a bounded table growing; 2: the offered load was not sustained.
Run: `make soak` or `uv run prizeflow-dev soak --minutes 30`; the options also read SOAK_MINUTES, SOAK_ROUNDS_PER_S,
SOAK_PAYOUTS_PER_S, SOAK_CLAIMS_IN_FLIGHT, SOAK_INTERVAL_S, SOAK_WARMUP_MINUTES, SOAK_RSS_GROWTH, SOAK_P99_GROWTH,
SOAK_TABLE_GROWTH and SOAK_SERVICES.
Ctrl-C (or SIGTERM) ends the load early and still judges what was sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections import Counter, deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from aiokafka import AIOKafkaProducer

from prizeflow_contracts.topics import GAME_ROUNDS
from prizeflow_devstack.infra import Infra, ensure_infra
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import Platform
from prizeflow_testkit.bench import bench_producer, host, p50_p99
from prizeflow_testkit.platform_load import (
    CLAIMS_ENV,
    LOAD_ENV,
    PLAYERS_PER_ROUND,
    USDC,
    Claimant,
    fund,
    publish,
    round_events,
)
from prizeflow_testkit.soak import LATENCIES, Offered, Thresholds, headline, judge, unbounded_report
from prizeflow_testkit.soak_probes import (
    CompletionTracker,
    LagProbe,
    PostgresProbe,
    Window,
    established_sockets,
    now,
    process_groups,
    process_resources,
)

TICK = 0.05  # the generator's pace: it hands out what is due every 50 ms


def env_default(name: str, fallback: float) -> float:
    return float(os.environ.get(f"SOAK_{name}", fallback))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=env_default("MINUTES", 30), help="load duration (30)")
    p.add_argument(
        "--rounds-per-s",
        type=float,
        default=env_default("ROUNDS_PER_S", 500),
        help=f"rounds a second, {PLAYERS_PER_ROUND} allocations each (500: 4,000 allocations/s, half the goal)",
    )
    p.add_argument(
        "--payouts-per-s", type=float, default=env_default("PAYOUTS_PER_S", 1000), help="1000: half the goal"
    )
    p.add_argument(
        "--claims-in-flight",
        type=int,
        default=int(env_default("CLAIMS_IN_FLIGHT", 64)),
        help="claims awaiting rewards' answer at most (64)",
    )
    p.add_argument("--interval", type=float, default=env_default("INTERVAL_S", 10), help="seconds between samples (10)")
    p.add_argument(
        "--warmup-minutes",
        type=float,
        default=float(os.environ["SOAK_WARMUP_MINUTES"]) if "SOAK_WARMUP_MINUTES" in os.environ else None,
        help="left out of the verdict (default: 5, or a third of a shorter run)",
    )
    p.add_argument("--rss-growth", type=float, default=env_default("RSS_GROWTH", 0.10), help="fail above (0.10)")
    p.add_argument("--p99-growth", type=float, default=env_default("P99_GROWTH", 0.5), help="fail above (0.5)")
    p.add_argument("--table-growth", type=float, default=env_default("TABLE_GROWTH", 0.25), help="bounded tables")
    p.add_argument(
        "--services",
        default=os.environ.get("SOAK_SERVICES"),
        help="comma-separated (default: the whole platform, as `Platform` starts it)",
    )
    p.add_argument("--out", type=Path, default=None, help="directory (default: .results/soak)")
    args = p.parse_args(argv)
    if args.warmup_minutes is None:
        args.warmup_minutes = min(5.0, args.minutes / 3)
    return args


def port_of(url: str) -> int:
    port = urlsplit(url.replace("+asyncpg", "")).port
    if port is None:
        raise ValueError(f"no port in {url}")
    return port


def players(n: int) -> list[str]:
    """The players of the `n`-th round (as bench_e2e picks them: 5,000 players, eight a round)."""
    return [f"p{(n * 7 + i) % 5000}" for i in range(PLAYERS_PER_ROUND)]


class Generator:
    """Offers the load on a schedule from its start: what is due is handed over every tick (a slow tick catches
    up). Rounds go to Kafka, each timed when its close is handed over; payouts are claims through rewards' API by
    players a completed round credited (one claim per credit), each timed when sent, at most `concurrency` in
    flight."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        claimant: Claimant,
        platform: Platform,
        campaign: str,
        args: argparse.Namespace,
        rounds: CompletionTracker,
        claims: CompletionTracker,
    ) -> None:
        self.producer, self.claimant, self.campaign, self.args = producer, claimant, campaign, args
        self.rounds_topic = GAME_ROUNDS.name + platform.suffix
        self.rounds, self.claims = rounds, claims
        self.sent = {"rounds": 0, "payouts": 0}
        self.outcomes: Counter[str] = Counter()  # claims by what rewards answered: approved, held, refused:<code>
        self.started = 0.0
        self._round_of: dict[str, int] = {}  # round id → n, until the round completed
        self._credited: deque[str] = deque()  # players a completed round credited, not yet claiming
        self._in_flight: set[asyncio.Task[None]] = set()
        rounds.on_complete = self.credit

    def due(self, kind: str) -> int:
        rate = self.args.rounds_per_s if kind == "rounds" else self.args.payouts_per_s
        return int(rate * (time.monotonic() - self.started)) if self.started else 0

    def credit(self, round_ids: list[str]) -> None:
        for rid in round_ids:
            if (n := self._round_of.pop(rid, None)) is not None:
                self._credited.extend(players(n))

    async def _claim(self, player: str) -> None:
        sent_at = now()
        try:
            claim_id, status = await self.claimant.claim(player)
        except httpx.HTTPError as err:
            self.outcomes[f"error:{type(err).__name__}"] += 1
            return
        if claim_id is None:
            self.outcomes[f"refused:{status}"] += 1
            return
        self.outcomes[status] += 1
        if status == "approved":  # a held claim waits for a person: never paid within the soak
            self.claims.sent(claim_id, sent_at)

    async def run(self, stop: asyncio.Event) -> None:
        self.started = time.monotonic()
        while not stop.is_set():
            # At most a fifth of a second's worth per pass, so that a generator behind its schedule still lets the
            # sampler and the trackers run; it catches up over the next passes (and the samples say it was behind).
            most = int(self.args.rounds_per_s / 5) + 1
            for n in range(self.sent["rounds"], min(self.due("rounds"), self.sent["rounds"] + most)):
                rid = f"s{uuid.uuid4().hex[:12]}"
                setup, result = round_events(rid, self.campaign, players(n))
                await publish(self.producer, self.rounds_topic, [*setup, result], rid)
                self._round_of[rid] = n
                self.rounds.sent(rid, now())
                self.sent["rounds"] += 1
            while (
                self.sent["payouts"] < self.due("payouts")
                and self._credited
                and len(self._in_flight) < self.claimant.concurrency
            ):
                task = asyncio.create_task(self._claim(self._credited.popleft()))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                self.sent["payouts"] += 1
            behind = self.sent["rounds"] < self.due("rounds")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0 if behind else TICK)
        await self.producer.flush()
        await asyncio.gather(*self._in_flight)


class Sampler:
    """One sample of everything `prizeflow_testkit.soak` documents, every `interval` seconds."""

    def __init__(self, platform: Platform, infra: Infra, rounds: CompletionTracker, claims: CompletionTracker) -> None:
        self.platform = platform
        self.ports = {"kafka": port_of(f"kafka://{infra.kafka_bootstrap}"), "postgres": port_of(infra.postgres_url)}
        databases = {n: p.database_url for n, p in platform.procs.items() if p.database_url}
        self.pg = PostgresProbe(infra.postgres_url, databases)
        self.lag = LagProbe(infra.kafka_bootstrap, platform.suffix)
        self.rounds, self.claims = rounds, claims
        self.latencies: dict[str, list[float]] = {name: [] for name in LATENCIES}  # after the warm-up, whole run
        self.last = time.monotonic()

    async def start(self) -> None:
        await self.pg.start()
        await self.lag.start()
        await self.rounds.start()
        await self.claims.start()
        self.last = time.monotonic()

    def _processes(self) -> dict[str, dict[str, int]]:
        sockets, groups = established_sockets(), process_groups()
        return {
            name: process_resources(proc.popen.pid, self.ports, sockets=sockets, groups=groups)
            for name, proc in self.platform.procs.items()
            if proc.popen is not None and proc.alive
        }

    async def sample(self, generator: Generator, *, keep_latencies: bool) -> dict[str, Any]:
        rounds, claims = self.rounds.take(), self.claims.take()
        at = time.monotonic()
        window, self.last = at - self.last, at
        if keep_latencies:
            self.latencies["closed_to_allocated"] += rounds.latencies_ms
            self.latencies["requested_to_paid"] += claims.latencies_ms
        return {
            "t": round(at - generator.started, 1),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "window_s": round(window, 2),
            "offered": {
                **generator.sent,
                "rounds_due": generator.due("rounds"),
                "payouts_due": generator.due("payouts"),
            },
            "claims": dict(generator.outcomes),
            "completed": {"allocations": rounds.completed, "payouts": claims.completed},
            "latency_ms": {"closed_to_allocated": figures(rounds), "requested_to_paid": figures(claims)},
            "backlog": {"rounds": self.rounds.pending, "payouts": self.claims.pending},
            "services": await asyncio.to_thread(self._processes),
            "postgres_connections": await self.pg.connections(),
            "tables": await self.pg.tables(),
            "lag": await self.lag.lag(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }

    async def stop(self) -> None:
        for probe in (self.rounds, self.claims, self.lag, self.pg):
            await probe.stop()


def figures(window: Window) -> dict[str, float]:
    p50, p99 = p50_p99(window.latencies_ms)
    return {"n": len(window.latencies_ms), "p50": round(p50, 1), "p99": round(p99, 1)}


def progress(s: dict[str, Any]) -> str:
    w = s["window_s"] or 1
    lat = s["latency_ms"]
    rss = " ".join(f"{n}={v['rss_kb'] / 1024:.0f}" for n, v in s["services"].items())
    return (
        f"{s['t']:>7.0f}s  alloc/s {s['completed']['allocations'] / w:>7,.0f}"
        f"  paid/s {s['completed']['payouts'] / w:>6,.0f}"
        f"  backlog r={s['backlog']['rounds']:,} p={s['backlog']['payouts']:,}"
        f"  lag max {max(s['lag'].values(), default=0):,}"
        f"  p99 ms c→a {lat['closed_to_allocated']['p99']:,.0f} r→p {lat['requested_to_paid']['p99']:,.0f}"
        f"  load {s['load_average'][0]}  RSS MB {rss}"
    )


async def drive(platform: Platform, infra: Infra, args: argparse.Namespace, jsonl: Path) -> dict[str, Any]:
    """The load for `args.minutes` (or until SIGINT/SIGTERM), a sample every `args.interval` s, then the drain."""
    seconds = args.minutes * 60
    campaign = f"soak-{uuid.uuid4().hex[:6]}"
    await fund(platform, campaign, int(args.rounds_per_s * seconds * 1.2 + 100) * 100 * USDC)
    rounds = CompletionTracker.rounds(platform.procs["rewards"].database_url or "", PLAYERS_PER_ROUND)
    claims = CompletionTracker.claims(platform.procs["payouts"].database_url or "")
    sampler = Sampler(platform, infra, rounds, claims)
    producer = bench_producer(infra.kafka_bootstrap)
    claimant = Claimant(platform, concurrency=args.claims_in_flight)
    stop, done = asyncio.Event(), asyncio.Event()  # the load's end; the trackers' end (after the drain)
    loop = asyncio.get_running_loop()
    samples: list[dict[str, Any]] = []
    out: dict[str, Any] = {"samples": samples}
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(sampler.stop)
        await sampler.start()
        await producer.start()
        stack.push_async_callback(producer.stop)
        await claimant.start()
        stack.push_async_callback(claimant.stop)
        for sig in (signal.SIGINT, signal.SIGTERM):  # the first ends the load early; the verdict still comes
            loop.add_signal_handler(sig, stop.set)
            stack.callback(loop.remove_signal_handler, sig)
        generator = Generator(producer, claimant, platform, campaign, args, rounds, claims)
        trackers = [asyncio.create_task(t.run(done)) for t in (rounds, claims)]

        async def end_trackers() -> None:
            done.set()
            await asyncio.gather(*trackers)

        stack.push_async_callback(end_trackers)
        load = asyncio.create_task(generator.run(stop))
        deadline = time.monotonic() + seconds
        print(
            f"load: {args.rounds_per_s:g} rounds/s ({args.rounds_per_s * PLAYERS_PER_ROUND:,.0f} allocations/s), "
            f"{args.payouts_per_s:g} claims/s paid out for {args.minutes:g} min; warm-up {args.warmup_minutes:g} "
            f"min; a sample every {args.interval:g} s",
            flush=True,
        )
        while not stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, min(args.interval, deadline - time.monotonic())))
            for task in (load, *trackers):
                if task.done():
                    task.result()  # the generator or a tracker died: say why
            warm = time.monotonic() - generator.started >= args.warmup_minutes * 60
            sample = await sampler.sample(generator, keep_latencies=warm)
            samples.append(sample)
            with jsonl.open("a") as f:
                f.write(json.dumps(sample) + "\n")
            print(progress(sample), flush=True)
        out["interrupted"] = stop.is_set()
        out["load_s"] = round(time.monotonic() - generator.started, 1)
        stop.set()
        await load
        # What was sent still completes: how long the platform takes to catch up says how close to its limit the
        # load was (these samples are not the verdict's).
        drained = time.monotonic()
        drain: list[dict[str, Any]] = []
        while (rounds.pending or claims.pending) and time.monotonic() - drained < max(60.0, 3 * args.interval):
            await asyncio.sleep(2.0)  # the trackers poll the database meanwhile
            drain.append(await sampler.sample(generator, keep_latencies=False))
        out["drain"] = {
            "seconds": round(time.monotonic() - drained, 1),
            "drained": not (rounds.pending or claims.pending),
            "left": {"rounds": rounds.pending, "payouts": claims.pending},
            "samples": drain,
        }
        out["claims"] = dict(generator.outcomes)
    whole: dict[str, Any] = {}
    for name, values in sampler.latencies.items():
        p50, p99 = p50_p99(sorted(values))
        whole[name] = {"n": len(values), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}
    out["latency_after_warmup"] = whole
    return out


async def soak(args: argparse.Namespace, out: Path, stamp: str) -> dict[str, Any]:
    infra = ensure_infra()
    platform = Platform(
        infra,
        Path(tempfile.mkdtemp(prefix="prizeflow-soak-")),
        env=LOAD_ENV,
        service_env={"rewards": CLAIMS_ENV},
    )
    if args.services:
        platform.services = tuple(s.strip() for s in args.services.split(",") if s.strip())
    doc: dict[str, Any] = {
        "soak": "platform",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": host(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    began = time.monotonic()
    try:
        await asyncio.to_thread(platform.start)
        doc["platform_start_s"] = round(time.monotonic() - began, 1)
        print(f"platform up in {doc['platform_start_s']} s: {', '.join(platform.services)}", flush=True)
        run = await drive(platform, infra, args, out / f"soak-{stamp}.samples.jsonl")
    finally:
        await asyncio.to_thread(platform.stop)
    thresholds = Thresholds(
        warmup_s=args.warmup_minutes * 60,
        rss_growth=args.rss_growth,
        p99_growth=args.p99_growth,
        table_growth=args.table_growth,
    )
    samples = run.pop("samples")
    doc |= run
    doc["verdict"] = judge(samples, Offered(args.rounds_per_s, args.payouts_per_s, PLAYERS_PER_ROUND), thresholds)
    doc["samples"] = samples
    return doc


def chart(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = doc["samples"]
    minutes = [s["t"] / 60 for s in samples]
    warmup = doc["config"]["warmup_minutes"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9), sharex=True)
    rss, lat, lag, tables = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for name in sorted({n for s in samples for n in s["services"]}):
        rss.plot(minutes, [s["services"].get(name, {}).get("rss_kb", float("nan")) / 1024 for s in samples], label=name)
    rss.set_title("RSS per service (MB)")
    for name, style in zip(LATENCIES, ("-", "--"), strict=True):
        lat.plot(minutes, [s["latency_ms"][name]["p99"] for s in samples], style, label=f"p99 {name}")
        lat.plot(minutes, [s["latency_ms"][name]["p50"] for s in samples], style, alpha=0.4, label=f"p50 {name}")
    lat.set_title("Latency per window (ms)")
    for group in sorted({g for s in samples for g in s["lag"]}):
        lag.plot(minutes, [s["lag"].get(group, 0) for s in samples], label=group)
    lag.plot(minutes, [s["backlog"]["rounds"] for s in samples], "k:", label="rounds pending")
    lag.plot(minutes, [s["backlog"]["payouts"] for s in samples], "k--", label="payouts pending")
    lag.set_title("Consumer lag (records) and end-to-end backlog")
    last = samples[-1]["tables"] if samples else {}
    biggest = sorted(
        ((svc, t) for svc, ts in last.items() for t in ts), key=lambda st: -last[st[0]][st[1]]["total_bytes"]
    )[:10]
    for svc, t in biggest:
        retention = doc["verdict"]["tables"][f"{svc}.{t}"]["retention"]
        tables.plot(
            minutes,
            [s["tables"].get(svc, {}).get(t, {}).get("total_bytes", float("nan")) / (1 << 20) for s in samples],
            "-" if retention == "bounded" else "--",
            label=f"{svc}.{t} ({retention})",
        )
    tables.set_title("Largest tables, total size with indexes (MB)")
    for ax in (rss, lat, lag, tables):
        ax.axvspan(0, warmup, color="grey", alpha=0.15, label="warm-up")
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    for ax in (lag, tables):
        ax.set_xlabel("minutes under load")
    v = doc["verdict"]
    load = v["load"]
    state = "PASS" if v["pass"] else ("LOAD NOT SUSTAINED" if not v["sustained"] else "FAIL")
    fig.suptitle(
        f"Prizeflow soak, {doc['host']['cores']} cores: {state} — offered {load['offered']['allocations_per_s']:,.0f} "
        f"allocations/s + {load['offered']['payouts_per_s']:,.0f} payouts/s, delivered "
        f"{load['delivered']['allocations_per_s']:,.0f} + {load['delivered']['payouts_per_s']:,.0f}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(doc: dict[str, Any]) -> None:
    v = doc["verdict"]
    load = v["load"]
    print("\n=== soak verdict ===")
    print(f"platform start: {doc.get('platform_start_s')} s; load for {doc.get('load_s')} s", end="")
    print(f"; drained in {doc['drain']['seconds']} s" if doc.get("drain", {}).get("drained") else "; NOT drained")
    for kind in ("offered", "generated", "delivered"):
        allocations, payouts = load[kind]["allocations_per_s"], load[kind]["payouts_per_s"]
        print(f"{kind:>10}: {allocations:>8,.0f} allocations/s {payouts:>7,.0f} payouts/s")
    for name, fig in doc["latency_after_warmup"].items():
        print(f"{name} after the warm-up: p50 {fig['p50_ms']:,} ms, p99 {fig['p99_ms']:,} ms (n={fig['n']:,})")
    for name, t in v["rss"].items():
        ci = t["slope_ci_per_h"]
        print(
            f"RSS {name:<12} {t['start'] / 1024:>7,.0f} → {t['end'] / 1024:>7,.0f} MB, "
            f"slope {t['slope_per_h'] / 1024:+,.1f} MB/h "
            f"[{ci[0] / 1024:+,.1f}, {ci[1] / 1024:+,.1f}] {'RISING' if t['rising'] else ''}"
        )
    print("tables that grow with traffic in a soak (a retention of days, or none yet: ADR 0008):")
    for line in unbounded_report(v):
        print(line)
    for line in headline(v):
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or find_root() / ".results" / "soak"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    doc = asyncio.run(soak(args, out, stamp))
    path = out / f"soak-{stamp}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    chart(doc, out / f"soak-{stamp}.png")
    shutil.copyfile(path, out / "soak.json")
    shutil.copyfile(out / f"soak-{stamp}.png", out / "soak.png")
    report(doc)
    print(f"results: {path} and {out / f'soak-{stamp}.png'} (also soak.json, soak.png)")
    return int(doc["verdict"]["exit_code"])


if __name__ == "__main__":
    raise SystemExit(main())
