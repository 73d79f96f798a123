"""`prizeflow-dev bench-check` (make bench-check): the regression guard on the figures `docs/capacity.md` commits.

It measures this checkout and a reference commit side by side, on the same machine, the same PostgreSQL and the
same Kafka, minutes apart, and judges each guarded figure of this checkout against the reference's figure of the
same sitting. A figure more than `TOLERANCE` below the reference's fails the check (exit 1); a guarded figure
missing from either run fails it too; a figure the run has and the block does not is reported "not yet committed"
(no verdict). Guarded: claims answered and paid per second, payouts per second with the compliance gate on (a run
whose payouts the gate did not decide fails), settlement's round results and allocations per second.

Why a reference build and not a ratio to pgbench: the platform's cost is mostly Python on one core per process, and
pgbench's (TPC-B at 8 clients) mostly commits and disk; on one machine the two moved apart (pgbench 3,325 → 3,984
while payouts held; a day later the same code paid half as fast at the same pgbench). The reference is the one
baseline that costs exactly what the platform costs: the platform itself, at the commit the figures were committed
at. Each run is the end-to-end bench with short sustained phases (every service its own process, the gate on);
a sitting is two pairs in mirrored order (this checkout, the reference, the reference, this checkout), each side
at its better run of each figure, so neither side always goes first and one noisy minute costs only its own run.
Not part of `make test`: it needs a quiet machine and about 25 minutes.

The committed figures are the fenced block tagged `bench-check` in docs/capacity.md:

    ```json bench-check
    {"reference": "77681f49", "pgbench_tps": 2553, "figures": {"claims_paid_per_s": 418, ...}}
    ```

`reference` is the commit measured beside this checkout (checked out under `.devstack/bench-reference/<commit>`, a
git worktree with its own virtualenv, synced from the uv cache, and this checkout's downloaded tools); `figures`
are the reference's figures on the machine that committed them, with that run's pgbench: a record, not judged.
`bench-check --update` makes this checkout's commit the reference (a clean tree, from a sitting, never from saved
results): it prints each figure beside the reference's of the same sitting, refuses when the check fails, and
refuses when a figure is lower (or missing) unless `--allow-lower` says so, so the reference moves down by no more
than the tolerance, and only when told.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prizeflow_devstack.bench import bench_env, last_json_document, run_child
from prizeflow_devstack.infra import ensure_infra
from prizeflow_devstack.paths import Paths

TOLERANCE = 0.20
CAPACITY = Path("docs") / "capacity.md"
E2E = Path("tests") / "bench" / "bench_e2e.py"
REFERENCES = Path(".devstack") / "bench-reference"
# What measures rather than what is measured: a difference here from the reference is printed beside the verdict.
HARNESS = ("tests/bench", "tools/testkit", "tools/devstack/src/prizeflow_devstack/platform.py")
# The run the figures are measured at: the guarded phases at the goals' rates (above what this machine does: each
# measures the platform saturated, behind a bounded backlog) for 15 s instead of the bench's 60; not the latency
# phases (claims at half the rate, paced rounds). About six minutes a run. The reference runs its own bench_e2e.py
# with these arguments, so a reference commit must take them (every commit since 27f6005d does).
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
# Run by the reference's own interpreter in its checkout: its bench, on the infrastructure the environment names.
_REFERENCE_RUN = """
import sys
from pathlib import Path
from prizeflow_devstack.bench import bench_env, run_child
root = Path.cwd()
code, out, err = run_child(
    [sys.executable, str(root / "tests" / "bench" / "bench_e2e.py"), *sys.argv[1:]],
    cwd=root, env=bench_env(root), capture=True,
)
sys.stdout.write(out)
sys.stderr.write(err[-3000:])
sys.exit(code)
"""


@dataclass(frozen=True, slots=True)
class Run:
    """One e2e bench run's guarded figures, with its pgbench (reported, not judged)."""

    pgbench_tps: float
    figures: dict[str, float]

    def best(self, other: Run) -> Run:
        """Each figure at its better of two runs of the same code (a noisy minute costs only itself)."""
        names = self.figures.keys() | other.figures.keys()
        return Run(
            max(self.pgbench_tps, other.pgbench_tps),
            {n: max(v for v in (self.figures.get(n), other.figures.get(n)) if v is not None) for n in names},
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    figure: str
    committed: float | None  # the block's record; None: not yet committed (a figure the block does not have)
    reference: float | None  # the reference commit's figure in this sitting
    measured: float | None  # this checkout's figure in this sitting

    @property
    def uncommitted(self) -> bool:
        return self.committed is None

    @property
    def ok(self) -> bool:
        if self.uncommitted:
            return True  # nothing to fall below yet
        return (
            self.measured is not None
            and self.reference is not None
            and self.measured >= (1 - TOLERANCE) * self.reference
        )

    @property
    def change(self) -> float | None:
        """This checkout's figure against the reference's, -0.25 for 25 % below."""
        if self.measured is None or not self.reference:
            return None
        return self.measured / self.reference - 1

    @property
    def lowers(self) -> bool:
        """Making this checkout the reference would lower the figure (or drop it)."""
        if self.uncommitted:
            return False
        return self.measured is None or self.reference is None or self.measured < self.reference


def committed(text: str) -> dict[str, Any]:
    """The `bench-check` block of docs/capacity.md."""
    match = _BLOCK.search(text)
    if match is None:
        raise ValueError("docs/capacity.md has no ```json bench-check block")
    doc = json.loads(match.group("body"))
    if not isinstance(doc, dict) or not isinstance(doc.get("figures"), dict) or not doc.get("reference"):
        raise ValueError("the bench-check block needs reference and figures")
    return doc


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = doc
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def measured(e2e: dict[str, Any]) -> Run:
    """Every guarded figure an e2e bench document has. A figure whose run says the compliance gate was not on is
    left out (as missing: a committed one then fails the check)."""
    figures: dict[str, float] = {}
    for name, path in FIGURES.items():
        node = _at(e2e, path)
        if name in GATED and _at(e2e, GATED[name]) is False:
            continue
        if isinstance(node, int | float):
            figures[name] = float(node)
    return Run(float(_at(e2e, ("baseline_pgbench", "tps")) or 0), figures)


def judge(block: dict[str, Any], reference: Run, head: Run) -> list[Verdict]:
    """A verdict for every committed figure, then one ("not yet committed") for each figure only the run has."""
    verdicts = [
        Verdict(name, float(value), reference.figures.get(name), head.figures.get(name))
        for name, value in block["figures"].items()
    ]
    verdicts += [
        Verdict(name, None, reference.figures.get(name), got)
        for name, got in head.figures.items()
        if name not in block["figures"]
    ]
    return verdicts


def block_for(commit: str, run: Run) -> str:
    body = json.dumps(
        {
            "reference": commit,
            "pgbench_tps": round(run.pgbench_tps),
            "figures": {k: round(v) for k, v in sorted(run.figures.items())},
        }
    )
    return f"```json bench-check\n{body}\n```"


def update(text: str, commit: str, run: Run) -> str:
    if _BLOCK.search(text) is None:
        raise ValueError("docs/capacity.md has no ```json bench-check block to update")
    return _BLOCK.sub(lambda _: block_for(commit, run), text, count=1)


def verdict_table(block: dict[str, Any], reference: Run, head: Run, verdicts: list[Verdict], *, title: str) -> Table:
    table = Table(
        title=f"{title}: this checkout beside {block['reference']} "
        f"(pgbench {head.pgbench_tps:.0f} and {reference.pgbench_tps:.0f} tps, reported only)"
    )
    for column in ("figure", "committed", f"{block['reference']} now", "this checkout", "change", "verdict"):
        table.add_column(column, no_wrap=column == "figure")
    for v in verdicts:
        if v.uncommitted:
            verdict = "not yet committed"
        elif v.measured is None or v.reference is None:
            verdict = "[red]missing from a run[/red]"
        else:
            verdict = "ok" if v.ok else f"[red]more than {TOLERANCE:.0%} below[/red]"
        table.add_row(
            v.figure,
            "-" if v.committed is None else f"{v.committed:.0f}",
            "-" if v.reference is None else f"{v.reference:.0f}",
            "-" if v.measured is None else f"{v.measured:.0f}",
            "-" if v.change is None else f"{v.change:+.0%}",
            verdict,
        )
    table.caption = f"committed: the reference's figures on the machine that committed them ({CAPACITY})"
    return table


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


def head_commit(root: Path) -> tuple[str, bool]:
    """(this checkout's commit, whether its tree is clean but for the capacity document)."""
    dirty = [line for line in _git(root, "status", "--porcelain").splitlines() if line[3:] != str(CAPACITY)]
    return _git(root, "rev-parse", "HEAD"), not dirty


def reference_checkout(root: Path, commit: str, console: Console) -> Path:
    """The reference commit checked out beside this one, with its own virtualenv (synced from the uv cache) and
    this checkout's downloaded tools (Kafka's, uv)."""
    full = _git(root, "rev-parse", "--verify", f"{commit}^{{commit}}")
    path = root / REFERENCES / full[:12]
    if not (path / ".git").exists():
        console.print(f"[bold]▶ the reference {commit}[/bold] [dim]git worktree at {path}[/dim]")
        _git(root, "worktree", "prune")
        _git(root, "worktree", "add", "--detach", "--force", str(path), full)
    if _git(path, "rev-parse", "HEAD") != full or _git(path, "status", "--porcelain", "--untracked-files=no"):
        console.print(f"[yellow]the reference's checkout was moved or edited: back to {full[:12]}[/yellow]")
        _git(path, "checkout", "--force", "--detach", full)
    changed = _git(root, "diff", "--name-only", full, "HEAD", "--", *HARNESS)
    if changed:
        console.print(f"[yellow]the bench itself differs from the reference's (each side runs its own): {changed}")
    tools = Paths(path).base / "tools"
    if not tools.is_symlink() and not tools.exists():
        tools.parent.mkdir(parents=True, exist_ok=True)
        tools.symlink_to(Paths(root).base / "tools", target_is_directory=True)
    uv = os.environ.get("UV") or str(Paths(root).base / "tools" / "bin" / "uv")
    subprocess.run([uv, "sync", "--frozen", "--all-packages", "--quiet"], cwd=path, check=True, env=_own_env(path))
    return path


def _own_env(path: Path) -> dict[str, str]:
    """The environment for a program of the checkout at `path`: no other checkout's virtualenv or root."""
    other = {"VIRTUAL_ENV", "PRIZEFLOW_ROOT", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT"}
    ours = {k: v for k, v in os.environ.items() if k not in other}
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        ours["PATH"] = os.pathsep.join(p for p in ours.get("PATH", "").split(os.pathsep) if not p.startswith(venv))
    return {**ours, "PRIZEFLOW_ROOT": str(path)}


def run_head(root: Path, console: Console) -> dict[str, Any] | None:
    console.print(f"[bold]▶ e2e (short), this checkout[/bold] [dim]{E2E} {' '.join(SHORT_E2E)}[/dim]")
    cmd = [sys.executable, str(root / E2E), *SHORT_E2E]
    return _document(run_child(cmd, cwd=root, env=bench_env(root), capture=True), console)


def run_reference(root: Path, path: Path, commit: str, console: Console) -> dict[str, Any] | None:
    """One run of the reference checked out at `path` (`reference_checkout`)."""
    infra = ensure_infra(root)  # the same PostgreSQL and Kafka as this checkout's run
    console.print(f"[bold]▶ e2e (short), the reference {commit}[/bold] [dim]{path}[/dim]")
    cmd = [str(path / ".venv" / "bin" / "python"), "-c", _REFERENCE_RUN, *SHORT_E2E]
    return _document(run_child(cmd, cwd=path, env={**_own_env(path), **infra.env()}, capture=True), console)


def _document(result: tuple[int, str, str], console: Console) -> dict[str, Any] | None:
    code, stdout, stderr = result
    found = last_json_document(stdout)
    if code != 0 or found is None:
        console.print(f"[red]✗ the e2e bench failed (exit {code})[/red]\n{stderr[-3000:]}")
        return None
    return found


Measure = Callable[[], dict[str, Any] | None]


def _measure(doc: dict[str, Any] | None, console: Console) -> Run | None:
    if doc is None:
        return None
    for name, path in GATED.items():
        if _at(doc, path) is False:
            console.print(f"[red]{name}: the run's compliance gate was not on ({'.'.join(path)}): not judged[/red]")
    return measured(doc)


def sitting(head: Measure, reference: Measure, console: Console) -> tuple[Run, Run] | None:
    """Two pairs in mirrored order (this checkout, the reference, the reference, this checkout), each side at its
    better run of each figure: neither side always runs first, and a noisy minute on either side costs only
    itself."""
    runs: dict[str, list[Run]] = {"head": [], "reference": []}
    for side, measure in (("head", head), ("reference", reference), ("reference", reference), ("head", head)):
        run = _measure(measure(), console)
        if run is None:
            return None
        runs[side].append(run)
    (head_1, head_2), (ref_1, ref_2) = runs["head"], runs["reference"]
    return ref_1.best(ref_2), head_1.best(head_2)


def _write(
    capacity: Path, text: str, commit: str, head: Run, verdicts: list[Verdict], *, allow_lower: bool, console: Console
) -> int:
    """This checkout as the new reference: never past a regression, and lower only when told."""
    if not all(v.ok for v in verdicts):
        console.print("[red]not written: the check fails; a reference is never moved past a regression[/red]")
        return 1
    lowered = [v.figure for v in verdicts if v.lowers]
    if lowered and not allow_lower:
        console.print(
            f"[red]not written: this checkout is below the reference in {', '.join(lowered)}; "
            "--allow-lower writes it anyway (within the tolerance only)[/red]"
        )
        return 1
    capacity.write_text(update(text, commit[:8], head))
    console.print(f"committed to {CAPACITY}: the reference is now {commit[:8]}, {head.figures}")
    return 0


def run_check(
    root: Path,
    *,
    write: bool = False,
    allow_lower: bool = False,
    e2e_json: Path | None = None,
    reference_json: Path | None = None,
    console: Console | None = None,
    identify: Callable[[Path], tuple[str, bool]] = head_commit,
    head: Measure | None = None,
    reference: Measure | None = None,
) -> int:
    """Measure (or read, `e2e_json` beside `reference_json`: judged, never written) this checkout and the
    reference; judge, or `write` this checkout as the new reference. `identify` says which commit this checkout is
    and whether its tree is clean (git's answer); `head` and `reference` run one e2e bench each (the real runs by
    default)."""
    console = console or Console()
    capacity = root / CAPACITY
    text = capacity.read_text()
    block = committed(text)
    if write and e2e_json is not None:
        console.print("[red]not written: a saved result names no commit; the reference is written from a sitting[/red]")
        return 1
    commit, clean = identify(root) if e2e_json is None else ("", True)
    if write and not clean:
        console.print("[red]not written: the reference is a commit, and this tree has changes beyond the block[/red]")
        return 1
    if e2e_json is not None:
        if reference_json is None:
            raise ValueError("a saved result is judged beside a saved reference result (--reference-json)")
        ref_run = _measure(json.loads(reference_json.read_text()), console)
        head_run = _measure(json.loads(e2e_json.read_text()), console)
        pair = (ref_run, head_run) if ref_run is not None and head_run is not None else None
    elif clean and commit.startswith(str(block["reference"])):
        console.print(f"this checkout is the reference {block['reference']}: one run, judged against itself")
        run = _measure((head or (lambda: run_head(root, console)))(), console)
        pair = None if run is None else (run, run)
    else:
        ref = str(block["reference"])
        checkout = functools.cache(lambda: reference_checkout(root, ref, console))  # once a sitting, not once a run
        pair = sitting(
            head or (lambda: run_head(root, console)),
            reference or (lambda: run_reference(root, checkout(), ref, console)),
            console,
        )
    if pair is None:
        return 1
    ref_run, head_run = pair
    verdicts = judge(block, ref_run, head_run)
    if write:
        console.print(verdict_table(block, ref_run, head_run, verdicts, title="bench-check --update"))
        return _write(capacity, text, commit, head_run, verdicts, allow_lower=allow_lower, console=console)
    console.print(verdict_table(block, ref_run, head_run, verdicts, title="bench-check"))
    return 0 if all(v.ok for v in verdicts) else 1


__all__ = [
    "FIGURES",
    "GATED",
    "TOLERANCE",
    "Run",
    "Verdict",
    "committed",
    "judge",
    "measured",
    "run_check",
    "sitting",
    "update",
]
