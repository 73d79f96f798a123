"""`prizeflow-dev bench` (make bench): run every `*/bench/bench_*.py` of the workspace, collect their JSON.

Each benchmark is its own process against the devstack's real PostgreSQL and Kafka and prints one JSON
document (its last output). Results go to `.results/bench/<name>.json` plus a combined `summary.json`.

`prizeflow-dev soak` (make soak) runs `tests/bench/soak.py` the same way, in the foreground (it reports as it
goes, for as long as it is told to: docs/soak.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prizeflow_devstack.devenv import identity_env
from prizeflow_devstack.infra import ensure_infra, sweep_orphans
from prizeflow_devstack.paths import Paths

BENCH_GLOBS = (
    "libs/*/bench/bench_*.py",
    "services/*/bench/bench_*.py",
    "tools/*/bench/bench_*.py",
    "tests/bench/bench_*.py",
)


def discover(root: Path) -> list[Path]:
    return sorted(p for pattern in BENCH_GLOBS for p in root.glob(pattern))


def last_json_document(output: str) -> dict[str, Any] | None:
    """The last top-level JSON object printed (benchmarks may log before it)."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] | None = None
    index = 0
    while (start := output.find("{", index)) != -1:
        try:
            doc, end = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(doc, dict):
            found = doc
        index = end
    return found


def capacity_summary(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The capacity model's headline figures of a benchmark that measured them (`capacity` in its document:
    bench_e2e): CPU-µs per event per service and in total, and the load the machine was under."""
    cap = doc.get("capacity")
    if not isinstance(cap, dict) or "cpu_us" not in cap:
        return None
    keys = ("allocation", "claim", "settled_result", "payout")
    return {
        "cpu_us": cap["cpu_us"],
        **{f"prizeflow_cpu_us_per_{k}": cap.get(f"prizeflow_cpu_us_per_{k}") for k in keys},
        "goal_cpu_us_per_allocation": cap.get("goal_cpu_us_per_allocation"),
        "cpu_goal_met": cap.get("cpu_goal_met"),
        **{f"per_{k}": cap.get(f"per_{k}") for k in keys},
        "load_average": cap.get("host", {}).get("load_average"),
        "profiled": cap.get("profiled"),
    }


def capacity_table(name: str, figures: dict[str, Any]) -> Table:
    """CPU-µs per event of each service (docs/capacity.md)."""
    rows: dict[str, dict[str, float]] = figures["cpu_us"]
    services = sorted({s for per in rows.values() for s in per})
    table = Table(title=f"{name}: CPU-µs per event (load average {figures.get('load_average')})")
    table.add_column("per")
    for s in services:
        table.add_column(s, justify="right")
    table.add_column("all", justify="right")
    for per, by_service in rows.items():
        if by_service:
            cells = [f"{by_service.get(s, 0):,.0f}" for s in services]
            table.add_row(per.removeprefix("per_"), *cells, f"{sum(by_service.values()):,.0f}")
    goal = figures.get("goal_cpu_us_per_allocation")
    if goal is not None:
        table.caption = (
            f"Prizeflow CPU per allocation: {figures.get('prizeflow_cpu_us_per_allocation')} µs (goal ≤ {goal}: "
            f"{'met' if figures.get('cpu_goal_met') else 'not met'})"
        )
    return table


def _number(value: Any) -> str:
    """Thousands as integers, small values with their decimals (0.95 transactions, 12.5 ms)."""
    if not isinstance(value, int | float):
        return str(value)
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def figures_table(doc: dict[str, Any]) -> Table:
    """The e2e bench's `figures` (`{name: {value, unit, per_pgbench, goal, goal_met}}`), each beside its ratio to the
    same run's pgbench TPS and its goal: a rate's ratio is the rate divided by the TPS, a time's (ms, µs) the time
    multiplied by it (both read the same on a machine twice as fast); a count has none."""
    tps = doc.get("baseline_pgbench", {}).get("tps")
    table = Table(title=f"e2e figures beside their ratio to this run's pgbench ({tps} tps)")
    for column, justify in (("figure", "left"), ("value", "right"), ("unit", "left"), ("ratio", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_column("goal")
    table.add_column("met")
    for name, f in doc.get("figures", {}).items():
        value, ratio = f.get("value"), f.get("per_pgbench")
        met = f.get("goal_met")
        table.add_row(
            name,
            _number(value),
            str(f.get("unit", "")),
            "-" if ratio is None else f"{ratio:.4g}",
            str(f.get("goal", "")),
            "" if met is None else ("yes" if met else "[red]no[/red]"),
        )
    table.caption = "ratio: a rate / pgbench tps; a time (ms, µs, in seconds) x pgbench tps; none for a count"
    return table


SOAK_SCRIPT = Path("tests") / "bench" / "soak.py"


def bench_env(root: Path) -> dict[str, str]:
    """Benchmarks start services: they run in the dev profile on the checkout's dev identity (unless the
    environment names another), like `make run`, on the devstack's infrastructure (started if need be)."""
    infra = ensure_infra(root)
    sweep_orphans(infra, root)  # what a killed bench left
    identity = {k: v for k, v in identity_env(Paths(root).base / "secrets").items() if k not in os.environ}
    return {**os.environ, **identity, **infra.env(), "PYTHONUNBUFFERED": "1"}


def run_child(cmd: list[str], *, cwd: Path, env: dict[str, str] | None, capture: bool = False) -> tuple[int, str, str]:
    """Run a bench script to its end: (exit code, stdout, stderr; empty unless `capture`).

    A bench starts services of its own and stops them in its `finally`. It runs in its own session, so a
    terminal's Ctrl-C reaches this process only, which passes a SIGINT or SIGTERM on once, as SIGINT, and then
    waits for the script to stop what it started (`subprocess.run` would have killed it 0.25 s after the signal,
    leaving its services running). The handlers are installed before the bench starts: a handled signal is
    reset to its default in the new program, so the bench reacts to SIGINT even when whoever started us ignores it
    (a shell's background job: an ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt)."""
    started: list[subprocess.Popen[str]] = []
    interrupted: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if interrupted:
            return
        interrupted.append(signum)
        if started and started[0].poll() is None:
            started[0].send_signal(signal.SIGINT)  # benches stop their services on KeyboardInterrupt

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            text=True,
        )
        started.append(proc)
        if interrupted:  # the signal came while it was starting
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return proc.returncode, out or "", err or ""


def run_soak(root: Path, argv: list[str]) -> int:
    """`tests/bench/soak.py` with `argv`, its output straight to the terminal; its exit code."""
    script = root / SOAK_SCRIPT
    code, _, _ = run_child([sys.executable, str(script), *argv], cwd=root, env=bench_env(root))
    return code


def run_all(root: Path, only: list[str] | None = None, console: Console | None = None) -> int:
    console = console or Console()
    env = bench_env(root)
    out_dir = root / ".results" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"cores": os.cpu_count(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": {}}
    failed = 0
    for script in discover(root):
        name = script.stem.removeprefix("bench_")
        if only and name not in only:
            continue
        console.print(f"[bold]▶ {name}[/bold] [dim]{script.relative_to(root)}[/dim]")
        started = time.monotonic()
        code, stdout, stderr = run_child([sys.executable, str(script)], cwd=root, env=env, capture=True)
        elapsed = time.monotonic() - started
        doc = last_json_document(stdout)
        if code != 0 or doc is None:
            failed += 1
            console.print(f"[red]✗ {name} failed (exit {code})[/red]\n{stderr[-3000:]}")
            summary["results"][name] = {"error": stderr[-3000:], "exit": code}
            continue
        doc["wall_seconds"] = round(elapsed, 1)
        (out_dir / f"{name}.json").write_text(json.dumps(doc, indent=2))
        summary["results"][name] = doc
        console.print_json(json.dumps(doc))
    capacity = {name: figures for name, doc in summary["results"].items() if (figures := capacity_summary(doc))}
    if capacity:
        summary["capacity"] = capacity
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print(f"results: {out_dir}")
    for name, figures in capacity.items():
        console.print(capacity_table(name, figures))
    for doc in summary["results"].values():
        if isinstance(doc.get("figures"), dict):
            console.print(figures_table(doc))
    table = Table(title=f"Benchmarks ({os.cpu_count()} cores)")
    table.add_column("benchmark")
    table.add_column("goal met")
    table.add_column("scale goal met (issue 20; e2e: 46)")

    def said(verdict: object) -> str:
        return "yes" if verdict is True else ("no" if verdict is False else "-")

    for name, doc in summary["results"].items():
        if "error" in doc:
            table.add_row(name, "error", "error")
            continue
        scale = doc.get("goal_at_scale")
        table.add_row(name, said(doc.get("pass")), said(scale.get("met") if isinstance(scale, dict) else None))
    console.print(table)
    return 1 if failed else 0
