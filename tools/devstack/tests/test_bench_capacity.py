"""`make bench` carries the e2e bench's capacity figures into summary.json and prints them (unit tier)."""

from __future__ import annotations

from rich.console import Console

from prizeflow_devstack.bench import capacity_summary, capacity_table, figures_table


def test_a_benchmark_without_capacity_figures_has_no_capacity_summary() -> None:
    assert capacity_summary({"transfers_per_s": 1}) is None
    assert capacity_summary({"capacity": "n/a"}) is None


def test_the_capacity_figures_are_summarised_and_printed_per_service() -> None:
    doc = {
        "capacity": {
            "cpu_us": {"per_allocation": {"rewards": 120.0, "settlement": 160.0}, "per_claim": {}},
            "prizeflow_cpu_us_per_allocation": 280.0,
            "goal_cpu_us_per_allocation": 150,
            "cpu_goal_met": False,
            "per_allocation": {"postgres_wal_bytes": 4900},
            "host": {"load_average": [3.0, 2.0, 1.0]},
            "profiled": False,
        }
    }
    figures = capacity_summary(doc)
    assert figures is not None
    assert figures["prizeflow_cpu_us_per_allocation"] == 280.0
    assert figures["per_allocation"] == {"postgres_wal_bytes": 4900}
    assert figures["prizeflow_cpu_us_per_claim"] is None
    console = Console(width=200, record=True)
    console.print(capacity_table("e2e", figures))
    text = console.export_text()
    assert "allocation" in text
    assert "280" in text  # the total of the row, and the caption
    assert "not met" in text


def test_the_e2e_figures_are_printed_beside_their_ratio_to_pgbench_and_their_goal() -> None:
    doc = {
        "baseline_pgbench": {"tps": 2000},
        "figures": {
            "claims_paid_per_s": {
                "value": 400,
                "unit": "/s",
                "per_pgbench": 0.2,
                "goal": ">= 1000",
                "goal_met": False,
            },
            "claim_postgres_xacts": {"value": 0.95, "unit": "count", "per_pgbench": None},
        },
    }
    console = Console(width=200, record=True)
    console.print(figures_table(doc))
    text = console.export_text()
    assert "2000 tps" in text
    row = next(line for line in text.splitlines() if "claims_paid_per_s" in line)
    assert "400" in row
    assert "0.2" in row
    assert ">= 1000" in row
    assert "no" in row
    xacts = next(line for line in text.splitlines() if "claim_postgres_xacts" in line)
    assert "0.95" in xacts
    assert " - " in xacts  # a count has no ratio
