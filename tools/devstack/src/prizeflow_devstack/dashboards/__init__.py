"""`prizeflow-dashboards`: write the Grafana dashboards (deploy/grafana/dashboards/*.json) from code, or check
that the committed JSON is what the code generates (`--check`, run by `make lint` and a unit test).

Grafana provisions every file of that folder (deploy/grafana/provisioning/dashboards/prizeflow.yml, mounted by
docker-compose.yml). The dashboards are defined in `catalog.py` with the typed builder of `model.py`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from prizeflow_devstack.dashboards.catalog import OVERVIEW_UID, RAILS_UID, SERVICES, dashboards, service_uid
from prizeflow_devstack.dashboards.model import Dashboard, to_json
from prizeflow_devstack.paths import resolve_root

__all__ = [
    "OVERVIEW_UID",
    "RAILS_UID",
    "SERVICES",
    "dashboards",
    "dashboards_dir",
    "main",
    "render",
    "service_uid",
    "stale",
]

UID_PREFIX = "prizeflow-"


def dashboards_dir(root: Path | None = None) -> Path:
    return resolve_root(root) / "deploy" / "grafana" / "dashboards"


def file_name(dashboard: Dashboard) -> str:
    return dashboard.uid.removeprefix(UID_PREFIX) + ".json"


def render(root: Path | None = None) -> dict[Path, str]:
    """Every dashboard file, path → JSON."""
    directory = dashboards_dir(root)
    return {directory / file_name(d): to_json(d) for d in dashboards()}


def stale(root: Path | None = None) -> list[Path]:
    """Dashboard files that differ from what the code generates, and JSON files the code no longer generates."""
    expected = render(root)
    out_of_date = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    orphans = [p for p in sorted(dashboards_dir(root).glob("*.json")) if p not in expected]
    return out_of_date + orphans


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="prizeflow-dashboards", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a dashboard file is stale; write nothing")
    parser.add_argument("--root", type=Path, default=None, help="repo root (default: discovered from cwd)")
    args = parser.parse_args(argv)
    root = resolve_root(args.root)
    if args.check:
        out_of_date = stale(root)
        for path in out_of_date:
            print(f"stale: {path.relative_to(root)} (run `uv run --frozen prizeflow-dashboards`)", file=sys.stderr)
        raise SystemExit(1 if out_of_date else 0)
    expected = render(root)
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(root)}")
    for orphan in sorted(dashboards_dir(root).glob("*.json")):
        if orphan not in expected:
            orphan.unlink()
            print(f"removed {orphan.relative_to(root)} (no longer generated)")


if __name__ == "__main__":
    main()
