"""The `prizeflow-dev run` foreground view: infra and services, refreshed every second."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from prizeflow_devstack.infra import Infra, status
from prizeflow_devstack.supervisor import RunningService, service_healthy


def _mark(ok: bool) -> Text:
    return Text("● up", style="green") if ok else Text("● down", style="bold red")


def render(infra: Infra, services: Sequence[RunningService], root: Path | None = None) -> Group:
    stack = status(root)
    table = Table(title="Prizeflow devstack", expand=True)
    for column in ("component", "state", "address", "pid"):
        table.add_column(column)
    table.add_row(
        "postgres",
        _mark(stack.postgres.running or not infra.managed),
        infra.postgres_url,
        str(stack.postgres.pid or "-"),
    )
    table.add_row(
        "kafka",
        _mark(stack.kafka.running or not infra.managed),
        infra.kafka_bootstrap,
        str(stack.kafka.pid or "-"),
    )
    for svc in services:
        table.add_row(svc.spec.name, _mark(service_healthy(svc)), svc.http_url or "-", str(svc.pid))
    footer = Text(f"{time.strftime('%H:%M:%S')}  Ctrl-C stops everything", style="dim")
    return Group(table, footer)


def run_live_view(infra: Infra, services: Sequence[RunningService], root: Path | None = None) -> None:
    """Blocks until interrupted (KeyboardInterrupt propagates to the caller, which tears down)."""
    with Live(render(infra, services, root), refresh_per_second=2, screen=False) as live:
        while True:
            time.sleep(1.0)
            live.update(render(infra, services, root))
