"""The `prizeflow-dev run` foreground view: infra, services and what flows through them, every second.

The flow figures are read from each service's own /metrics (the same numbers Prometheus scrapes), so the
view shows what the platform reports about itself, not a separate bookkeeping.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from prizeflow_devstack.infra import Infra, status
from prizeflow_devstack.supervisor import RunningService, service_healthy

# Runtime metrics every service exposes (prizeflow_runtime.metrics), by suffix.
FLOW_COLUMNS = (
    ("outbox published", "outbox_published_total", None),
    ("applied", "events_consumed_total", "applied"),
    ("duplicates absorbed", "events_duplicate_total", None),
    ("retries", "handler_retries_total", None),
    ("dead-lettered", "events_dead_lettered_total", None),
)


def scrape(url: str, timeout: float = 0.5) -> dict[str, float]:
    """Sum each runtime counter over its labels (an `outcome` label is kept apart)."""
    totals: dict[str, float] = {}
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            body = response.read().decode()
    except OSError:
        return totals
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            suffix = sample.name.split("_", 2)[-1]
            outcome = sample.labels.get("outcome")
            key = f"{suffix}:{outcome}" if outcome else suffix
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


@dataclass
class FlowTracker:
    """Keeps the previous scrape per service to show rates."""

    previous: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)

    def table(self, services: Sequence[RunningService]) -> Table:
        table = Table(title="Event flow (from each service's /metrics)", expand=True)
        table.add_column("service")
        for title, _, _ in FLOW_COLUMNS:
            table.add_column(title, justify="right")
        table.add_column("applied/s", justify="right")
        now = time.monotonic()
        for svc in services:
            if svc.metrics_url is None:
                continue
            values = scrape(svc.metrics_url)
            cells = []
            for _, suffix, outcome in FLOW_COLUMNS:
                value = sum(v for k, v in values.items() if _matches(k, suffix, outcome))
                style = "bold red" if suffix.startswith("events_dead") and value else ""
                cells.append(Text(f"{value:,.0f}", style=style))
            applied = sum(v for k, v in values.items() if _matches(k, "events_consumed_total", "applied"))
            rate = "-"
            if svc.spec.name in self.previous:
                then, old = self.previous[svc.spec.name]
                old_applied = sum(v for k, v in old.items() if _matches(k, "events_consumed_total", "applied"))
                if now > then:
                    rate = f"{(applied - old_applied) / (now - then):,.1f}"
            self.previous[svc.spec.name] = (now, values)
            table.add_row(svc.spec.name, *cells, rate)
        return table


def _matches(key: str, suffix: str, outcome: str | None) -> bool:
    name, _, key_outcome = key.partition(":")
    return name.endswith(suffix) and (outcome is None or key_outcome == outcome)


def _mark(ok: bool) -> Text:
    return Text("● up", style="green") if ok else Text("● down", style="bold red")


def render(
    infra: Infra, services: Sequence[RunningService], root: Path | None = None, flow: FlowTracker | None = None
) -> Group:
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
        "kafka", _mark(stack.kafka.running or not infra.managed), infra.kafka_bootstrap, str(stack.kafka.pid or "-")
    )
    for svc in services:
        table.add_row(svc.spec.name, _mark(service_healthy(svc)), svc.http_url or "-", str(svc.pid))
    parts: list[Table | Text] = [table]
    if flow is not None:
        parts.append(flow.table(services))
    parts.append(Text(f"{time.strftime('%H:%M:%S')}  Ctrl-C stops everything", style="dim"))
    return Group(*parts)


def run_live_view(infra: Infra, services: Sequence[RunningService], root: Path | None = None) -> None:
    """Blocks until interrupted (KeyboardInterrupt propagates to the caller, which tears down)."""
    flow = FlowTracker()
    with Live(render(infra, services, root, flow), refresh_per_second=2, screen=False) as live:
        while True:
            time.sleep(1.0)
            live.update(render(infra, services, root, flow))
