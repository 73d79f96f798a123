"""Prometheus of our own (Debian's `prometheus` binary) under `.devstack/prometheus/`: it scrapes every service
the devstack runs and evaluates the project's rules (`deploy/prometheus/rules/*.yml`, whatever they hold).

`job` is the service's name, as in deploy/compose/prometheus.yml and the Kubernetes ServiceMonitors: the rules
select on it. The intervals are short (5 s) so a demo's alerts fire and resolve while someone watches.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from prizeflow_devstack.paths import Paths, resolve_root
from prizeflow_devstack.ports import HOST, remembered_or_free
from prizeflow_devstack.procs import pid_alive, pids_matching, spawn_detached, start_ticks, tail, terminate
from prizeflow_devstack.state import State, load_state, locked, save_state

if TYPE_CHECKING:
    from prizeflow_devstack.supervisor import RunningService, ServiceSpec

RULES_DIR = Path("deploy") / "prometheus" / "rules"
RULE_FILES = "*.yml"
INTERVAL_S = 5.0
READY_DEADLINE_S = 30.0
RETENTION = "2d"
# Debian's build ships the classic web UI only (the React UI is not packaged): its pages are under /classic.
ALERTS_PAGE = "/classic/alerts"


class PrometheusError(RuntimeError):
    """Prometheus could not be started or does not answer; the message carries its log tail."""


def find_binary() -> str:
    """`PROMETHEUS_BIN`, else `prometheus` on PATH (Debian's package: `make system-deps` installs it)."""
    if explicit := os.environ.get("PROMETHEUS_BIN"):
        if not Path(explicit).is_file():
            raise PrometheusError(f"PROMETHEUS_BIN={explicit} is not a file")
        return explicit
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusError(
            "`prometheus` not found: `make system-deps` installs it (tools/devstack/scripts/ensure-prometheus.sh)"
        )
    return found


def scrape_targets(services: Iterable[RunningService]) -> dict[str, str]:
    """`job` (the service's name) → `host:port` of every running service that serves /metrics."""
    return {svc.spec.name: f"{HOST}:{svc.port}" for svc in services if svc.metrics_url and svc.port}


def planned_targets(specs: Iterable[ServiceSpec], ports: Mapping[str, int]) -> dict[str, str]:
    """The same for services about to start on `ports` (see supervisor.reserve_ports)."""
    return {spec.name: f"{HOST}:{ports[spec.name]}" for spec in specs if spec.metrics and spec.name in ports}


def _duration(seconds: float) -> str:
    """Prometheus durations are integers with a unit: `5s`, `800ms`."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def render_config(targets: Mapping[str, str], rules: Path, *, interval_s: float = INTERVAL_S) -> str:
    """prometheus.yml: one job per service, named as the service; the rule files by glob, so a rule file added
    to the directory is loaded at the next start without touching the devstack."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": _duration(interval_s),
            "scrape_timeout": _duration(max(interval_s * 0.8, 0.5)),
            "evaluation_interval": _duration(interval_s),
        },
        "rule_files": [str(rules / RULE_FILES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in sorted(targets.items())
        ],
    }
    header = "# written by prizeflow-devstack at every start of its Prometheus; edits are overwritten\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def running_pid(paths: Paths, state: State) -> int | None:
    """The recorded Prometheus if alive; else any process started on this checkout's config (lost state)."""
    if pid_alive(state.prometheus.pid, state.prometheus.start_ticks):
        return state.prometheus.pid
    orphans = leftover_pids(paths)
    return orphans[0] if orphans else None


def leftover_pids(paths: Paths) -> list[int]:
    return pids_matching(f"--config.file={paths.prometheus_config}")


def url(state: State) -> str | None:
    return f"http://{HOST}:{state.prometheus.port}" if state.prometheus.port else None


def spawn_prometheus(
    paths: Paths, state: State, targets: Mapping[str, str], *, rules: Path | None = None, interval_s: float = INTERVAL_S
) -> str:
    """(Re)start on the remembered port with a fresh config, so it scrapes the services as they run now and reads
    the rules as they are now (its data is kept); updates `state`; returns its URL without waiting for it."""
    rules = rules if rules is not None else paths.root / RULES_DIR
    if not any(rules.glob(RULE_FILES)):
        raise PrometheusError(f"no rule files ({RULE_FILES}) in {rules}")
    binary = find_binary()
    stop_prometheus(paths, state)
    paths.ensure()
    paths.prometheus_data.mkdir(parents=True, exist_ok=True)
    port = remembered_or_free(state.prometheus.port, exclude=state.used_ports() - {state.prometheus.port or -1})
    paths.prometheus_config.write_text(render_config(targets, rules, interval_s=interval_s), encoding="utf-8")
    print(f"devstack: starting Prometheus on {HOST}:{port} ({len(targets)} targets)", file=sys.stderr)
    argv = [
        binary,
        f"--config.file={paths.prometheus_config}",
        f"--storage.tsdb.path={paths.prometheus_data}",
        f"--storage.tsdb.retention.time={RETENTION}",
        f"--web.listen-address={HOST}:{port}",
    ]
    with paths.prometheus_log.open("ab") as out:
        out.write(f"\n=== start ({time.strftime('%F %T')}) ===\n".encode())
        out.flush()
        pid = spawn_detached(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=paths.prometheus_dir
        )
    state.prometheus.port, state.prometheus.pid, state.prometheus.start_ticks = port, pid, start_ticks(pid)
    return f"http://{HOST}:{port}"


def start_prometheus(
    paths: Paths, state: State, targets: Mapping[str, str], *, rules: Path | None = None, interval_s: float = INTERVAL_S
) -> str:
    """`spawn_prometheus`, then wait until it is ready. Prometheus refuses to start on a rule file it cannot
    load: the error is in the log tail this raises with."""
    address = spawn_prometheus(paths, state, targets, rules=rules, interval_s=interval_s)
    assert state.prometheus.pid is not None
    wait_ready(address, pid=state.prometheus.pid, log=paths.prometheus_log)
    return address


def ensure_prometheus(root: Path | None, targets: Mapping[str, str], *, interval_s: float = INTERVAL_S) -> str:
    """The devstack's Prometheus over `targets` (job → host:port), recorded in state.json (pid on disk before the
    wait)."""
    paths = Paths(resolve_root(root))
    with locked(paths):
        state = load_state(paths)
        address = spawn_prometheus(paths, state, targets, interval_s=interval_s)
        save_state(paths, state)
    assert state.prometheus.pid is not None
    wait_ready(address, pid=state.prometheus.pid, log=paths.prometheus_log)
    return address


def stop_prometheus(paths: Paths, state: State, *, grace: float = 10.0) -> bool:
    """SIGTERM then SIGKILL; also a Prometheus whose pid the state lost. Keeps the port. True if one ran."""
    recorded = state.prometheus.pid if pid_alive(state.prometheus.pid, state.prometheus.start_ticks) else None
    pids = {p for p in (recorded, *leftover_pids(paths)) if p is not None}  # never a recycled pid
    ran = False
    for pid in pids:
        if pid_alive(pid):
            ran = True
            if not terminate(pid, group=True, grace=grace):
                raise PrometheusError(f"Prometheus (pid {pid}) survived SIGKILL")
    state.prometheus.pid = None
    state.prometheus.start_ticks = None
    return ran


def _get(address: str, path: str, timeout: float) -> Any:
    with urllib.request.urlopen(f"{address}{path}", timeout=timeout) as response:  # noqa: S310 - loopback http
        return json.loads(response.read().decode())


def _ready(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/-/ready", timeout=1.0) as response:  # noqa: S310 - loopback http
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(address: str, *, pid: int, log: Path, deadline_s: float = READY_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise PrometheusError(f"Prometheus (pid {pid}) exited during startup\n--- {log} ---\n{tail(log)}")
        if _ready(address):
            return
        time.sleep(0.2)
    raise PrometheusError(f"Prometheus at {address} not ready within {deadline_s:.0f}s\n--- {log} ---\n{tail(log)}")


@dataclass(frozen=True)
class Alert:
    """One alert as Prometheus evaluates it (`pending` while its `for:` runs, then `firing`)."""

    name: str
    state: str
    severity: str
    summary: str
    active_at: str
    labels: Mapping[str, str]


def parse_alerts(payload: Mapping[str, Any]) -> list[Alert]:
    """The body of `GET /api/v1/alerts`, firing first, then by severity and name."""
    if payload.get("status") != "success":
        raise PrometheusError(f"Prometheus answered /api/v1/alerts with {payload.get('status')!r}")
    alerts = [
        Alert(
            name=str(raw.get("labels", {}).get("alertname", "?")),
            state=str(raw.get("state", "?")),
            severity=str(raw.get("labels", {}).get("severity", "-")),
            summary=str(raw.get("annotations", {}).get("summary", "")),
            active_at=str(raw.get("activeAt", "")),
            labels={str(k): str(v) for k, v in raw.get("labels", {}).items()},
        )
        for raw in payload.get("data", {}).get("alerts", [])
    ]
    rank = {"critical": 0, "warning": 1}
    return sorted(alerts, key=lambda a: (a.state != "firing", rank.get(a.severity, 2), a.name, a.summary))


def fetch_alerts(address: str, timeout: float = 1.0) -> list[Alert]:
    """Pending and firing alerts; PrometheusError when Prometheus does not answer."""
    try:
        payload = _get(address, "/api/v1/alerts", timeout)
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise PrometheusError(f"Prometheus at {address} does not answer: {err}") from err
    return parse_alerts(payload)


def api(address: str, path: str, timeout: float = 2.0) -> Any:
    """`GET <address><path>` decoded, for callers that wait on Prometheus's state (targets, rules)."""
    return _get(address, path, timeout)
