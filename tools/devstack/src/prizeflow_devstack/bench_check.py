"""`prizeflow-dev bench-check` (make bench-check): the regression guard on the figures `docs/capacity.md` commits.

It runs the end-to-end bench with short sustained phases (every service its own process, the compliance gate on,
the same run's pgbench beside it) and compares each guarded figure with the one committed in `docs/capacity.md`,
both as a ratio to their own run's pgbench TPS, so a slower or busier machine does not read as a regression and a
faster one does not hide one. Guarded: claims answered and paid per second, payouts per second with the gate on
(a run whose payouts the gate did not decide fails), settlement's round results and allocations per second.

A figure more than `TOLERANCE` below its committed ratio fails the check (exit 1); a committed figure missing from
the run fails it too; a figure the run has and the block does not is reported "not yet committed" (no verdict).
Not part of `make test`: it needs a quiet machine and a few minutes.

The committed figures are the fenced block tagged `bench-check` in docs/capacity.md:

    ```json bench-check
    {"pgbench_tps": 1514, "figures": {"claims_paid_per_s": 180, ...}}
    ```

`figures` maps each guarded figure to its value in the run that committed it; `pgbench_tps` is that run's
baseline. `bench-check --update` writes the block from a run (after a change that moves a figure on purpose): it
prints each figure before and after, and refuses to lower one (a lower ratio, or a figure the run lacks) unless
`--allow-lower` says so.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prizeflow_devstack.bench import bench_env, last_json_document, run_child

TOLERANCE = 0.20
CAPACITY = Path("docs") / "capacity.md"
E2E = Path("tests") / "bench" / "bench_e2e.py"
# The run the committed figures are measured at (docs/capacity.md): the guarded phases at the goals' rates (above
# what this machine does: each measures the platform saturated, behind a bounded backlog) for 15 s instead of the
# bench's 60; not the latency phases (claims at half the rate, paced rounds). A few minutes.
SHORT_E2E = (
    "--seconds", "15", "--baseline-seconds", "5", "--kafka-records", "50000", "--idle-seconds", "5",
    "--phases", "allocations,claims,settlement,payouts",
)  # fmt: skip
# The figures guarded (higher is better), and where each is in the e2e document.
FIGURES: dict[str, tuple[str, ...]] = {
    "allocations_per_s": ("allocations", "allocations_per_s"),
    "claims_answered_per_s": ("claims", "claims_answered_per_s"),
    "claims_paid_per_s": ("claims", "claims_paid_per_s"),
    "payouts_per_s": ("payouts", "payouts_per_s"),
    "settlement_round_results_per_s": ("settlement", "round_results_per_s"),
}
# A figure measured with the compliance gate off is not the figure guarded: where the run says whether it was on.
GATED: dict[str, tuple[str, ...]] = {"payouts_per_s": ("payouts", "gate", "on")}
_BLOCK = re.compile(r"```json bench-check\n(?P<body>.*?)\n```", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    figure: str
    committed: float | None  # None: not yet committed (a figure the block does not have)
    measured: float | None
    committed_ratio: float | None
    measured_ratio: float | None

    @property
    def ok(self) -> bool:
        if self.committed_ratio is None:
            return True  # nothing to fall below yet
        return self.measured_ratio is not None and self.measured_ratio >= (1 - TOLERANCE) * self.committed_ratio

    @property
    def uncommitted(self) -> bool:
        return self.committed_ratio is None

    @property
    def change(self) -> float | None:
        """The measured ratio against the committed one, -0.25 for 25 % below."""
        if self.measured_ratio is None or not self.committed_ratio:
            return None
        return self.measured_ratio / self.committed_ratio - 1

    @property
    def lowers(self) -> bool:
        """Writing the run's figure would lower the committed one (or drop it)."""
        if self.committed_ratio is None:
            return False
        return self.measured_ratio is None or self.measured_ratio < self.committed_ratio


def committed(text: str) -> dict[str, Any]:
    """The `bench-check` block of docs/capacity.md."""
    match = _BLOCK.search(text)
    if match is None:
        raise ValueError("docs/capacity.md has no ```json bench-check block")
    doc = json.loads(match.group("body"))
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict) or not doc.get("pgbench_tps"):
        raise ValueError("the bench-check block needs pgbench_tps and figures")
    return doc


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def measured(e2e: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(pgbench TPS, every guarded figure present) of an e2e bench document. A figure whose run says the
    compliance gate was not on is left out (as missing: a committed one then fails the check)."""
    tps = float(e2e["baseline_pgbench"]["tps"])
    figures: dict[str, float] = {}
    for name, path in FIGURES.items():
        node = _at(e2e, path)
        if name in GATED and _at(e2e, GATED[name]) is False:
            continue
        if isinstance(node, int | float):
            figures[name] = float(node)
    return tps, figures


def judge(block: dict[str, Any], tps: float, figures: dict[str, float]) -> list[Verdict]:
    """A verdict for every committed figure, then one ("not yet committed") for each figure only the run has."""
    base = float(block["pgbench_tps"])
    verdicts = []
    for name, value in block["figures"].items():
        got = figures.get(name)
        verdicts.append(
            Verdict(
                figure=name,
                committed=float(value),
                measured=got,
                committed_ratio=float(value) / base,
                measured_ratio=got / tps if got is not None and tps > 0 else None,
            )
        )
    for name, got in figures.items():
        if name not in block["figures"]:
            verdicts.append(Verdict(name, None, got, None, got / tps if tps > 0 else None))
    return verdicts


def block_for(tps: float, figures: dict[str, float]) -> str:
    body = json.dumps({"pgbench_tps": round(tps), "figures": {k: round(v) for k, v in figures.items()}})
    return f"```json bench-check\n{body}\n```"


def update(text: str, tps: float, figures: dict[str, float]) -> str:
    if _BLOCK.search(text) is None:
        raise ValueError("docs/capacity.md has no ```json bench-check block to update")
    return _BLOCK.sub(lambda _: block_for(tps, figures), text, count=1)


def verdict_table(block: dict[str, Any], tps: float, verdicts: list[Verdict], *, title: str) -> Table:
    table = Table(title=f"{title}: ratios to pgbench (committed {block['pgbench_tps']} tps, this run {tps:.0f})")
    for column in ("figure", "committed", "measured", "committed/tps", "measured/tps", "change", "verdict"):
        table.add_column(column)
    for v in verdicts:
        if v.uncommitted:
            verdict = "not yet committed"
        elif v.measured is None:
            verdict = "[red]missing from the run[/red]"
        else:
            verdict = "ok" if v.ok else f"[red]more than {TOLERANCE:.0%} below[/red]"
        table.add_row(
            v.figure,
            "-" if v.committed is None else f"{v.committed:.0f}",
            "-" if v.measured is None else f"{v.measured:.0f}",
            "-" if v.committed_ratio is None else f"{v.committed_ratio:.4f}",
            "-" if v.measured_ratio is None else f"{v.measured_ratio:.4f}",
            "-" if v.change is None else f"{v.change:+.0%}",
            verdict,
        )
    return table


def run_check(
    root: Path,
    *,
    write: bool = False,
    allow_lower: bool = False,
    e2e_json: Path | None = None,
    console: Console | None = None,
) -> int:
    console = console or Console()
    capacity = root / CAPACITY
    text = capacity.read_text()
    block = committed(text)
    if e2e_json is not None:
        doc = json.loads(e2e_json.read_text())
    else:
        console.print(f"[bold]▶ e2e (short)[/bold] [dim]{E2E} {' '.join(SHORT_E2E)}[/dim]")
        code, stdout, stderr = run_child(
            [sys.executable, str(root / E2E), *SHORT_E2E], cwd=root, env=bench_env(root), capture=True
        )
        found = last_json_document(stdout)
        if code != 0 or found is None:
            console.print(f"[red]✗ the e2e bench failed (exit {code})[/red]\n{stderr[-3000:]}")
            return 1
        doc = found
    tps, figures = measured(doc)
    for name, path in GATED.items():
        if _at(doc, path) is False:
            console.print(f"[red]{name}: the run's compliance gate was not on ({'.'.join(path)}): not judged[/red]")
    verdicts = judge(block, tps, figures)
    if write:
        console.print(verdict_table(block, tps, verdicts, title="bench-check --update, before and after"))
        lowered = [v.figure for v in verdicts if v.lowers]
        if lowered and not allow_lower:
            console.print(
                f"[red]not written: this run would lower {', '.join(lowered)} (as ratios to pgbench); "
                "--allow-lower writes it anyway[/red]"
            )
            return 1
        capacity.write_text(update(text, tps, figures))
        console.print(f"committed to {CAPACITY}: pgbench {tps:.0f} tps, {figures}")
        return 0
    console.print(verdict_table(block, tps, verdicts, title="bench-check"))
    return 0 if all(v.ok for v in verdicts) else 1


__all__ = ["FIGURES", "GATED", "TOLERANCE", "Verdict", "committed", "judge", "measured", "run_check", "update"]
