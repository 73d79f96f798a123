"""`make bench` carries the e2e bench's capacity figures into summary.json and prints them (unit tier)."""

from __future__ import annotations

from rich.console import Console

from prizeflow_devstack.bench import capacity_summary, capacity_table


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
