"""`prizeflow-dev bench` (make bench): run every `*/bench/bench_*.py` of the workspace, collect their JSON.

Each benchmark is its own process against the devstack's real PostgreSQL and Kafka and prints one JSON
document (its last output). Results go to `.results/bench/<name>.json` plus a combined `summary.json`.

`prizeflow-dev soak` (make soak) runs `tests/bench/soak.py` the same way, in the foreground (it reports as it
goes, for as long as it is told to: docs/soak.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prizeflow_devstack.devenv import identity_env
from prizeflow_devstack.infra import ensure_infra
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
    keys = ("allocation", "claim", "payout")
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


SOAK_SCRIPT = Path("tests") / "bench" / "soak.py"


def bench_env(root: Path) -> dict[str, str]:
    """Benchmarks start services: they run in the dev profile on the checkout's dev identity (unless the
    environment names another), like `make run`, on the devstack's infrastructure (started if need be)."""
    infra = ensure_infra(root)
    identity = {k: v for k, v in identity_env(Paths(root).base / "secrets").items() if k not in os.environ}
    return {**os.environ, **identity, **infra.env(), "PYTHONUNBUFFERED": "1"}


def run_soak(root: Path, argv: list[str]) -> int:
    """`tests/bench/soak.py` with `argv`, its output straight to the terminal; its exit code."""
    script = root / SOAK_SCRIPT
    proc = subprocess.run([sys.executable, str(script), *argv], cwd=root, env=bench_env(root), check=False)
    return proc.returncode


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
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True, check=False
        )
        elapsed = time.monotonic() - started
        doc = last_json_document(proc.stdout)
        if proc.returncode != 0 or doc is None:
            failed += 1
            console.print(f"[red]✗ {name} failed (exit {proc.returncode})[/red]\n{proc.stderr[-3000:]}")
            summary["results"][name] = {"error": proc.stderr[-3000:], "exit": proc.returncode}
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
    table = Table(title=f"Benchmarks ({os.cpu_count()} cores)")
    table.add_column("benchmark")
    table.add_column("goal met")
    for name, doc in summary["results"].items():
        verdict = doc.get("pass")
        table.add_row(name, "error" if "error" in doc else ("yes" if verdict else ("no" if verdict is False else "-")))
    console.print(table)
    return 1 if failed else 0
