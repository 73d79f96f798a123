"""`make bench-check`: this checkout's figures judged against the reference commit's, measured in the same sitting."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from prizeflow_devstack.bench_check import Run, committed, judge, measured, run_check, sitting, update
from prizeflow_devstack.paths import find_root

DOC = """# Capacity
text before
```json bench-check
{"reference": "abc12345", "pgbench_tps": 1000, "figures": {"claims_paid_per_s": 500, "payouts_per_s": 800}}
```
text after
"""


def e2e(
    claims: float | None, payouts: float, *, tps: float = 1000, gate: bool = True, settlement: float | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "baseline_pgbench": {"tps": tps},
        "payouts": {"payouts_per_s": payouts, "gate": {"on": gate}},
    }
    if claims is not None:
        doc["claims"] = {"claims_paid_per_s": claims}
    if settlement is not None:
        doc["settlement"] = {"round_results_per_s": settlement}
    return doc


HEAD = "def6789012345678901234567890123456789012"


def checkout(tmp_path: Path, text: str = DOC) -> Path:
    (tmp_path / "docs").mkdir(parents=True)
    (tmp_path / "docs" / "capacity.md").write_text(text)
    return tmp_path


def at(commit: str = HEAD, *, clean: bool = True) -> Callable[[Path], tuple[str, bool]]:
    """What git says of the checkout: its commit, and whether its tree is clean but for the block."""
    return lambda _root: (commit, clean)


def saved(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_reference_of_the_same_sitting_is_the_baseline_whatever_the_committed_figures_or_pgbench() -> None:
    block = committed(DOC)
    # A machine that runs the platform at half the speed it did when the block was committed, and pgbench faster:
    # the reference reads half too, so this checkout at the reference's figures passes.
    reference = measured(e2e(250, 400, tps=4000))
    assert all(v.ok for v in judge(block, reference, measured(e2e(250, 400, tps=3000))))
    # Same sitting, claims 25 % below the reference: fails; payouts 15 % below: within the tolerance.
    verdicts = {v.figure: v for v in judge(block, reference, measured(e2e(187.5, 340)))}
    assert not verdicts["claims_paid_per_s"].ok
    assert verdicts["claims_paid_per_s"].change == pytest.approx(-0.25)
    assert verdicts["payouts_per_s"].ok


def test_a_figure_missing_from_either_run_fails_the_check() -> None:
    block = committed(DOC)
    full = measured(e2e(500, 800))
    missing = measured(e2e(None, 800))
    assert not {v.figure: v for v in judge(block, full, missing)}["claims_paid_per_s"].ok
    assert not {v.figure: v for v in judge(block, missing, full)}["claims_paid_per_s"].ok


def test_a_figure_the_block_does_not_have_yet_is_reported_without_a_verdict(tmp_path: Path) -> None:
    run = measured(e2e(500, 800, settlement=3000))
    new = {v.figure: v for v in judge(committed(DOC), run, run)}["settlement_round_results_per_s"]
    assert new.uncommitted
    assert new.ok
    console = Console(width=200, record=True)
    head = saved(tmp_path, "head", e2e(500, 800, settlement=3000))
    assert run_check(checkout(tmp_path), e2e_json=head, reference_json=head, console=console) == 0
    assert "not yet committed" in console.export_text()


def test_payouts_measured_with_the_gate_off_are_not_the_figure_guarded(tmp_path: Path) -> None:
    assert "payouts_per_s" not in measured(e2e(500, 800, gate=False)).figures
    console = Console(width=200, record=True)
    head, ref = saved(tmp_path, "head", e2e(500, 800, gate=False)), saved(tmp_path, "ref", e2e(500, 800))
    assert run_check(checkout(tmp_path), e2e_json=head, reference_json=ref, console=console) == 1
    assert "gate was not on" in console.export_text()


def test_a_sitting_is_two_pairs_in_mirrored_order_each_side_at_its_better_run() -> None:
    order: list[str] = []

    def runs(side: str, docs: list[dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        it = iter(docs)

        def run() -> dict[str, Any]:
            order.append(side)
            return next(it)

        return run

    # A noisy minute for claims in this checkout's first run, for payouts in its second.
    head = runs("head", [e2e(300, 800), e2e(480, 700)])
    reference = runs("reference", [e2e(500, 800), e2e(510, 790)])
    pair = sitting(head, reference, Console(record=True))
    assert order == ["head", "reference", "reference", "head"]  # neither side always first
    assert pair is not None
    ref_run, head_run = pair
    assert head_run.figures == {"claims_paid_per_s": 480, "payouts_per_s": 800}
    assert ref_run.figures == {"claims_paid_per_s": 510, "payouts_per_s": 800}
    assert all(v.ok for v in judge(committed(DOC), ref_run, head_run))
    # A real regression reads in both of this checkout's runs.
    head, reference = runs("head", [e2e(300, 800), e2e(310, 800)]), runs("reference", [e2e(500, 800)] * 2)
    pair = sitting(head, reference, Console(record=True))
    assert pair is not None
    assert not all(v.ok for v in judge(committed(DOC), *pair))


def test_a_run_that_failed_fails_the_sitting() -> None:
    assert sitting(lambda: None, lambda: e2e(500, 800), Console(record=True)) is None


def sat(head: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """A sitting whose runs read `head` and `reference` each time (this checkout is at HEAD, its tree clean)."""
    return {"head": lambda: head, "reference": lambda: reference, "identify": at()}


def test_update_makes_this_commit_the_reference_and_never_lowers_a_figure_unless_told_to(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    doc = root / "docs" / "capacity.md"
    ref = e2e(500, 800, settlement=2900)
    # Payouts 10 % below the reference of the sitting (within the check's tolerance, but lower); claims higher.
    lower = e2e(550, 720, settlement=3000)
    console = Console(width=200, record=True)
    assert run_check(root, write=True, console=console, **sat(lower, ref)) == 1
    assert doc.read_text() == DOC
    said = console.export_text()
    assert "payouts_per_s" in said
    assert "--allow-lower" in said
    assert "-10%" in said
    # Told to: written, this commit the reference, the new figure with it.
    assert run_check(root, write=True, allow_lower=True, console=console, **sat(lower, ref)) == 0
    block = committed(doc.read_text())
    assert block["reference"] == HEAD[:8]
    assert block["figures"] == {"claims_paid_per_s": 550, "payouts_per_s": 720, "settlement_round_results_per_s": 3000}
    # A figure the run lacks would lower; every figure at least the reference's is written without being told.
    assert run_check(root, write=True, **sat(e2e(560, 810), ref)) == 1
    assert run_check(root, write=True, console=console, **sat(e2e(560, 810, settlement=2950), ref)) == 0


def test_update_never_moves_the_reference_past_a_regression_even_when_told_to(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    console = Console(width=200, record=True)
    assert run_check(root, write=True, allow_lower=True, console=console, **sat(e2e(300, 800), e2e(500, 800))) == 1
    assert "never moved past a regression" in console.export_text()
    assert committed((root / "docs" / "capacity.md").read_text()) == committed(DOC)


def test_update_refuses_saved_results_and_a_tree_with_changes_the_reference_commit_would_not_have(
    tmp_path: Path,
) -> None:
    root = checkout(tmp_path)
    run = saved(tmp_path, "run", e2e(600, 900))
    console = Console(width=200, record=True)
    assert run_check(root, write=True, e2e_json=run, reference_json=run, console=console, identify=at()) == 1
    assert "names no commit" in console.export_text()
    dirty = {**sat(e2e(600, 900), e2e(500, 800)), "identify": at(clean=False)}
    assert run_check(root, write=True, console=console, **dirty) == 1
    assert "changes beyond the block" in console.export_text()
    assert committed((root / "docs" / "capacity.md").read_text()) == committed(DOC)


def test_this_checkout_at_the_reference_commit_runs_once(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    runs: list[str] = []

    def head() -> dict[str, Any]:
        runs.append("head")
        return e2e(500, 800)

    def reference() -> dict[str, Any]:
        raise AssertionError("the reference is this checkout")

    identify = at("abc12345" + "0" * 32)
    assert run_check(root, head=head, reference=reference, identify=identify, console=Console(record=True)) == 0
    assert runs == ["head"]


def test_update_rewrites_only_the_block() -> None:
    text = update(DOC, "def67890", Run(1469.4, {"payouts_per_s": 900.0, "claims_paid_per_s": 612.2}))
    assert text.startswith("# Capacity\ntext before\n")
    assert text.endswith("```\ntext after\n")
    assert committed(text) == {
        "reference": "def67890",
        "pgbench_tps": 1469,
        "figures": {"claims_paid_per_s": 612, "payouts_per_s": 900},
    }


def test_a_document_without_the_block_or_its_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="bench-check"):
        committed("# Capacity\nno figures here\n")
    with pytest.raises(ValueError, match="reference"):
        committed(DOC.replace('"reference": "abc12345", ', ""))


def test_the_committed_capacity_document_names_a_reference_commit() -> None:
    block = committed((find_root() / "docs" / "capacity.md").read_text())
    assert re.fullmatch(r"[0-9a-f]{8,40}", block["reference"])  # a commit of this repository: test_integration.py
    # Issue 46: the guard covers claims, payouts with the gate on, settlement and allocations.
    assert set(block["figures"]) >= {
        "claims_paid_per_s",
        "payouts_per_s",
        "settlement_round_results_per_s",
        "allocations_per_s",
    }


def test_a_saved_result_is_judged_beside_a_saved_reference_and_a_regression_exits_non_zero(tmp_path: Path) -> None:
    root = checkout(tmp_path)
    ref = saved(tmp_path, "ref", e2e(500, 800))
    good, bad = saved(tmp_path, "good", e2e(480, 800)), saved(tmp_path, "bad", e2e(100, 800))
    assert run_check(root, e2e_json=good, reference_json=ref) == 0
    assert run_check(root, e2e_json=bad, reference_json=ref) == 1
    with pytest.raises(ValueError, match="reference"):
        run_check(root, e2e_json=good)
