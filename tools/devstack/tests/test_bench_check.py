"""`make bench-check`: figures judged as ratios to the same run's pgbench, against docs/capacity.md's block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prizeflow_devstack.bench_check import committed, judge, measured, run_check, update
from prizeflow_devstack.paths import find_root

DOC = """# Capacity
text before
```json bench-check
{"pgbench_tps": 1000, "figures": {"claims_paid_per_s": 500, "payouts_per_s": 800}}
```
text after
"""


def e2e(tps: float, claims: float | None, payouts: float) -> dict[str, object]:
    doc: dict[str, object] = {"baseline_pgbench": {"tps": tps}, "payouts": {"payouts_per_s": payouts}}
    if claims is not None:
        doc["claims"] = {"claims_paid_per_s": claims}
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
    assert set(block["figures"]) >= {"claims_paid_per_s", "payouts_per_s", "allocations_per_s"}


def test_run_check_judges_a_saved_result_and_exits_non_zero_on_a_regression(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "capacity.md").write_text(DOC)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(e2e(1000, 500, 800)))
    bad.write_text(json.dumps(e2e(1000, 100, 800)))
    assert run_check(tmp_path, e2e_json=good) == 0
    assert run_check(tmp_path, e2e_json=bad) == 1
