"""`make bench-check`: figures judged as ratios to the same run's pgbench, against docs/capacity.md's block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from prizeflow_devstack.bench_check import committed, judge, measured, run_check, update
from prizeflow_devstack.paths import find_root

DOC = """# Capacity
text before
```json bench-check
{"pgbench_tps": 1000, "figures": {"claims_paid_per_s": 500, "payouts_per_s": 800}}
```
text after
"""


def e2e(
    tps: float, claims: float | None, payouts: float, *, gate: bool = True, settlement: float | None = None
) -> dict[str, object]:
    doc: dict[str, object] = {
        "baseline_pgbench": {"tps": tps},
        "payouts": {"payouts_per_s": payouts, "gate": {"on": gate}},
    }
    if claims is not None:
        doc["claims"] = {"claims_paid_per_s": claims}
    if settlement is not None:
        doc["settlement"] = {"round_results_per_s": settlement}
    return doc


def test_a_slower_machine_is_not_a_regression_but_a_slower_platform_is() -> None:
    block = committed(DOC)
    # Half the machine, half the figures: the ratios hold.
    tps, figures = measured(e2e(500, 250, 400))
    assert all(v.ok for v in judge(block, tps, figures))
    # Same machine, claims 25 % down: fails; payouts 15 % down: within the tolerance.
    tps, figures = measured(e2e(1000, 375, 680))
    verdicts = {v.figure: v for v in judge(block, tps, figures)}
    assert not verdicts["claims_paid_per_s"].ok
    assert verdicts["claims_paid_per_s"].change == pytest.approx(-0.25)
    assert verdicts["payouts_per_s"].ok


def test_a_figure_missing_from_the_run_fails_the_check() -> None:
    tps, figures = measured(e2e(1000, None, 800))
    verdicts = {v.figure: v for v in judge(committed(DOC), tps, figures)}
    assert not verdicts["claims_paid_per_s"].ok


def test_a_figure_the_block_does_not_have_yet_is_reported_without_a_verdict(tmp_path: Path) -> None:
    tps, figures = measured(e2e(1000, 500, 800, settlement=3000))
    verdicts = {v.figure: v for v in judge(committed(DOC), tps, figures)}
    new = verdicts["settlement_round_results_per_s"]
    assert new.uncommitted
    assert new.ok
    assert new.measured_ratio == 3.0
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "capacity.md").write_text(DOC)
    run = tmp_path / "run.json"
    run.write_text(json.dumps(e2e(1000, 500, 800, settlement=3000)))
    console = Console(width=200, record=True)
    assert run_check(tmp_path, e2e_json=run, console=console) == 0
    assert "not yet committed" in console.export_text()


def test_payouts_measured_with_the_gate_off_are_not_the_figure_guarded(tmp_path: Path) -> None:
    tps, figures = measured(e2e(1000, 500, 800, gate=False))
    assert "payouts_per_s" not in figures
    verdicts = {v.figure: v for v in judge(committed(DOC), tps, figures)}
    assert not verdicts["payouts_per_s"].ok
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "capacity.md").write_text(DOC)
    run = tmp_path / "run.json"
    run.write_text(json.dumps(e2e(1000, 500, 800, gate=False)))
    console = Console(width=200, record=True)
    assert run_check(tmp_path, e2e_json=run, console=console) == 1
    assert "gate was not on" in console.export_text()


def test_update_never_lowers_a_figure_unless_told_to(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "capacity.md"
    doc.write_text(DOC)
    lower, higher = tmp_path / "lower.json", tmp_path / "higher.json"
    # Payouts 10 % below as a ratio (within the check's tolerance, but lower all the same); claims higher.
    lower.write_text(json.dumps(e2e(1000, 550, 720, settlement=3000)))
    console = Console(width=200, record=True)
    assert run_check(tmp_path, write=True, e2e_json=lower, console=console) == 1
    assert doc.read_text() == DOC
    said = console.export_text()
    assert "payouts_per_s" in said
    assert "--allow-lower" in said
    assert "0.8000" in said  # before
    assert "0.7200" in said  # after
    # Told to: written, the new figure with it.
    assert run_check(tmp_path, write=True, allow_lower=True, e2e_json=lower, console=console) == 0
    assert committed(doc.read_text())["figures"] == {
        "claims_paid_per_s": 550,
        "payouts_per_s": 720,
        "settlement_round_results_per_s": 3000,
    }
    # Every figure at least as high, and one added: written without being told.
    higher.write_text(json.dumps(e2e(1000, 560, 730, settlement=3100)))
    assert run_check(tmp_path, write=True, e2e_json=higher, console=console) == 0
    assert committed(doc.read_text())["figures"]["payouts_per_s"] == 730


def test_update_refuses_to_drop_a_committed_figure_the_run_does_not_have(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "capacity.md").write_text(DOC)
    run = tmp_path / "run.json"
    run.write_text(json.dumps(e2e(1000, None, 900)))
    assert run_check(tmp_path, write=True, e2e_json=run, console=Console(record=True)) == 1
    assert committed((tmp_path / "docs" / "capacity.md").read_text()) == committed(DOC)


def test_update_rewrites_only_the_block() -> None:
    text = update(DOC, 1469.4, {"claims_paid_per_s": 612.2, "payouts_per_s": 900.0})
    assert text.startswith("# Capacity\ntext before\n")
    assert text.endswith("```\ntext after\n")
    assert committed(text) == {"pgbench_tps": 1469, "figures": {"claims_paid_per_s": 612, "payouts_per_s": 900}}


def test_a_document_without_the_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="bench-check"):
        committed("# Capacity\nno figures here\n")


def test_the_committed_capacity_document_has_a_block_the_check_reads() -> None:
    block = committed((find_root() / "docs" / "capacity.md").read_text())
    assert block["pgbench_tps"] > 0
    # Issue 46: the guard covers claims, payouts with the gate on, settlement and allocations.
    assert set(block["figures"]) >= {
        "claims_paid_per_s",
        "payouts_per_s",
        "settlement_round_results_per_s",
        "allocations_per_s",
    }


def test_run_check_judges_a_saved_result_and_exits_non_zero_on_a_regression(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "capacity.md").write_text(DOC)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(e2e(1000, 500, 800)))
    bad.write_text(json.dumps(e2e(1000, 100, 800)))
    assert run_check(tmp_path, e2e_json=good) == 0
    assert run_check(tmp_path, e2e_json=bad) == 1
