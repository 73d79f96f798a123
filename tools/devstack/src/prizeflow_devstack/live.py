"""The `prizeflow-dev run` foreground view: infra, services, and what flows through them, every second.

Every figure is read from the services' own /metrics (what Prometheus scrapes), so the view shows what
the platform reports about itself, not a separate bookkeeping; the alerts are the devstack's Prometheus's own,
evaluated from the project's rules.
"""

from __future__ import annotations

import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.columns import Columns
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from prizeflow_contracts.money import asset
from prizeflow_devstack.infra import Infra, status
from prizeflow_devstack.prometheus import ALERTS_PAGE, Alert, PrometheusError, fetch_alerts
from prizeflow_devstack.sign_in import console_banner
from prizeflow_devstack.supervisor import RunningService, service_healthy

Sample = tuple[str, dict[str, str], float]

# Runtime metrics every service exposes (prizeflow_runtime.metrics): column title, name suffix, outcome.
FLOW_COLUMNS = (
    ("outbox published", "outbox_published_total", None),
    ("applied", "events_consumed_total", "applied"),
    ("duplicates absorbed", "events_duplicate_total", None),
    ("retries", "handler_retries_total", None),
    ("dead-lettered", "events_dead_lettered_total", None),
)


def scrape_samples(url: str, timeout: float = 0.5) -> list[Sample]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            body = response.read().decode()
    except OSError:
        return []
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(body) for s in f.samples]


def total(samples: Iterable[Sample], suffix: str, **match: str) -> float:
    """Sum of the samples whose name ends with `suffix` and whose labels include `match`."""
    return sum(
        v for n, labels, v in samples if n.endswith(suffix) and all(labels.get(k) == m for k, m in match.items())
    )


def breakdown(samples: Iterable[Sample], name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for n, labels, v in samples:
        if n == name and label in labels:
            out[labels[label]] += v
    return dict(out)


@dataclass
class LiveState:
    """The previous scrape per service, for rates."""

    previous: dict[str, tuple[float, float]] = field(default_factory=dict)

    def flow_table(self, scraped: dict[str, list[Sample]]) -> Table:
        table = Table(title="Event flow per service", expand=True)
        table.add_column("service")
        for title, _, _ in FLOW_COLUMNS:
            table.add_column(title, justify="right")
        table.add_column("applied/s", justify="right")
        now = time.monotonic()
        for name, samples in scraped.items():
            if not any(n.endswith(("outbox_published_total", "events_consumed_total")) for n, _, _ in samples):
                continue  # no event flow of its own (the console: HTTP only)
            cells = []
            for _, suffix, outcome in FLOW_COLUMNS:
                value = total(samples, suffix, **({"outcome": outcome} if outcome else {}))
                style = "bold red" if suffix.startswith("events_dead") and value else ""
                cells.append(Text(f"{value:,.0f}", style=style))
            applied = total(samples, "events_consumed_total", outcome="applied")
            rate = "-"
            if name in self.previous and now > self.previous[name][0]:
                then, before = self.previous[name]
                rate = f"{(applied - before) / (now - then):,.1f}"
            self.previous[name] = (now, applied)
            table.add_row(name, *cells, rate)
        return table


def _kv(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, expand=True, min_width=28)
    table.add_column("what")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    return table


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _money(minor: float, asset_code: str) -> str:
    """Minor units as whole units of the asset (display only; the ledger itself is integers)."""
    try:
        scale = asset(asset_code).scale
    except ValueError:
        return f"{minor:,.0f} {asset_code} minor units"
    whole, frac = divmod(int(minor), 10**scale)
    if scale == 0:
        return f"{whole:,} {asset_code}"
    cents = f"{frac:0{scale}d}"[:2]  # two decimals are enough to watch a pool move
    return f"{whole:,}.{cents} {asset_code}"


def platform_panels(scraped: dict[str, list[Sample]]) -> Columns:
    """Rounds, allocations and pools, claims and holds, payouts by state and provider, the game."""
    settlement = scraped.get("settlement", [])
    rewards = scraped.get("rewards", [])
    payouts = scraped.get("payouts", [])
    simulator = scraped.get("simulator", [])
    rounds = breakdown(settlement, "prizeflow_settlement_rounds", "state")
    round_rows = [(state, _n(rounds.get(state, 0))) for state in ("open", "closed", "resolved", "settled", "voided")]
    round_rows.append(("disputes", _n(total(settlement, "disputes_total"))))
    transfers = breakdown(rewards, "prizeflow_rewards_ledger_transfers_total", "kind")
    reward_rows = [(f"transfers: {k}", _n(v)) for k, v in sorted(transfers.items())]
    reward_rows += [
        (f"pools {figure}", _money(minor, code))
        for figure in ("funded", "reserved", "paid", "remaining")
        for code, minor in sorted(breakdown(rewards, f"prizeflow_rewards_pool_{figure}", "asset").items())
    ]
    reward_rows.append(("rounds held (pool short)", _n(total(rewards, "held_allocations"))))
    claims = breakdown(rewards, "prizeflow_rewards_claims_total", "outcome")
    claim_rows = [(f"claims {k}", _n(v)) for k, v in sorted(claims.items())]
    claim_rows.append(("held now", _n(total(rewards, "held_claims"))))
    claim_rows += [
        (f"hold: {k}", _n(v))
        for k, v in sorted(breakdown(rewards, "prizeflow_rewards_abuse_holds_total", "reason").items())
    ]
    payout_rows: list[tuple[str, str]] = []
    by: dict[tuple[str, str], float] = defaultdict(float)
    for n, labels, v in payouts:
        if n == "prizeflow_payouts_payouts":
            by[(labels.get("provider", "?"), labels.get("state", "?"))] += v
    payout_rows = [(f"{provider}: {state}", _n(v)) for (provider, state), v in sorted(by.items()) if v]
    payout_rows.append(("worker queue", _n(total(payouts, "worker_queue_length"))))
    game_rows = [
        (f"rounds {k}", _n(v))
        for k, v in sorted(breakdown(simulator, "prizeflow_simulator_rounds_published_total", "kind").items())
    ]
    game_rows += [
        (f"claims {k}", _n(v))
        for k, v in sorted(breakdown(simulator, "prizeflow_simulator_claims_total", "outcome").items())
    ]
    game_rows += [
        (f"chaos {k}", _n(v))
        for k, v in sorted(breakdown(simulator, "prizeflow_simulator_chaos_injected_total", "case").items())
    ]
    return Columns(
        [
            _kv("Rounds (settlement)", round_rows),
            _kv("Ledger (rewards)", reward_rows),
            _kv("Claims and holds", claim_rows),
            _kv("Payouts by provider: state", payout_rows),
            _kv("Game (simulator)", game_rows),
        ],
        expand=True,
    )


_SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}


def alerts_table(alerts: Sequence[Alert] | None, prometheus_url: str) -> Table:
    """Pending and firing alerts, firing first; `None`: Prometheus did not answer."""
    title = f"Alerts (Prometheus: {prometheus_url}{ALERTS_PAGE})"
    table = Table(title=title, expand=True)
    for column in ("state", "alert", "severity"):
        table.add_column(column, no_wrap=True)
    table.add_column("summary", overflow="fold", ratio=1)
    table.add_column("since (UTC)", no_wrap=True)
    if alerts is None:
        table.add_row(Text("?", style="bold red"), "Prometheus does not answer", "-", "-", "-")
    elif not alerts:
        table.add_row(Text("ok", style="green"), "no alert pending or firing", "-", "-", "-")
    for alert in alerts or ():
        state = Text(alert.state, style="bold red" if alert.state == "firing" else "yellow")
        severity = Text(alert.severity, style=_SEVERITY_STYLE.get(alert.severity, ""))
        since = alert.active_at[11:19] if len(alert.active_at) >= 19 else alert.active_at  # HH:MM:SS (UTC)
        table.add_row(state, alert.name, severity, alert.summary, since)
    return table


def _alerts(prometheus_url: str) -> list[Alert] | None:
    try:
        return fetch_alerts(prometheus_url, timeout=0.5)
    except PrometheusError:
        return None


def _mark(ok: bool) -> Text:
    return Text("● up", style="green") if ok else Text("● down", style="bold red")


def render(
    infra: Infra,
    services: Sequence[RunningService],
    root: Path | None = None,
    state: LiveState | None = None,
    prometheus_url: str | None = None,
) -> Group:
    stack = status(root)
    table = Table(title="Prizeflow: components (APIs: <url>/schema, metrics: <url>/metrics)", expand=True)
    for column in ("component", "state", "address", "pid"):
        table.add_column(column)
    for name, comp, address in (
        ("postgres", stack.postgres, infra.postgres_url),
        ("kafka", stack.kafka, infra.kafka_bootstrap),
    ):
        table.add_row(name, _mark(comp.running or not infra.managed), address, str(comp.pid or "-"))
    if prometheus_url is not None:
        table.add_row("prometheus", _mark(stack.prometheus.running), prometheus_url, str(stack.prometheus.pid or "-"))
    for svc in services:
        table.add_row(svc.spec.name, _mark(service_healthy(svc)), svc.http_url or "-", str(svc.pid))
    parts: list[Table | Text | Columns] = [table]
    if (sign_in := console_banner(services)) is not None:
        parts.append(sign_in)
    if state is not None:
        scraped = {svc.spec.name: scrape_samples(svc.metrics_url) for svc in services if svc.metrics_url}
        parts.append(platform_panels(scraped))
        parts.append(state.flow_table(scraped))
    if prometheus_url is not None:
        parts.append(alerts_table(_alerts(prometheus_url), prometheus_url))
    parts.append(
        Text(
            f"{time.strftime('%H:%M:%S')}  logs: uv run prizeflow-dev logs <name> -f   Ctrl-C stops everything",
            style="dim",
        )
    )
    return Group(*parts)


def run_live_view(
    infra: Infra, services: Sequence[RunningService], root: Path | None = None, *, prometheus_url: str | None = None
) -> None:
    """Blocks until interrupted (KeyboardInterrupt propagates to the caller, which tears down)."""
    state = LiveState()
    with Live(render(infra, services, root, state, prometheus_url), refresh_per_second=1, screen=False) as live:
        while True:
            time.sleep(1.0)
            live.update(render(infra, services, root, state, prometheus_url))
