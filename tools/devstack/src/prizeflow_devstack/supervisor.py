"""Discover `[tool.prizeflow.service]` members, run each as its own process group, stop them cleanly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from prizeflow_devstack.devenv import PEER_SETTINGS, PEER_TEMPLATES, dev_env
from prizeflow_devstack.infra import Infra, create_database
from prizeflow_devstack.paths import Paths, resolve_root
from prizeflow_devstack.ports import HOST, remembered_or_free
from prizeflow_devstack.procs import pid_alive, run_sync, spawn_detached, start_ticks, tail, terminate
from prizeflow_devstack.state import ServiceState, State, load_state, locked, save_state

SERVICE_GLOBS = ("services/*/pyproject.toml", "tools/*/pyproject.toml")
READY_DEADLINE_S = 60.0
STOP_GRACE_S = 10.0


class ServiceSpecError(ValueError):
    """A `[tool.prizeflow.service]` table that cannot be run."""


class ServiceStartError(RuntimeError):
    """A service exited or never became ready; the message carries its log tail."""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    directory: Path
    command: tuple[str, ...]
    http_port_env: str | None = None
    database: str | None = None
    migrations: Path | None = None
    metrics: bool = True  # serves Prometheus /metrics on its HTTP port (the emulators of third parties do not)
    # A stand-in payouts' local settings name (a rail's provider, the KYC vendor, the sanctions lists): every
    # platform that runs payouts runs it.
    payouts_needs: bool = False
    # `module:function` giving the local stack's settings for this stand-in and its clients, generated once
    # (`devenv.dev_env`): what a new emulator brings without an entry in the devstack.
    local_env: str | None = None
    # The key of `local_env`'s settings whose presence says a checkout's settings already hold them (required with
    # it): the hook runs only for a checkout without it.
    local_env_marker: str | None = None


@dataclass(frozen=True)
class RunningService:
    spec: ServiceSpec
    pid: int
    port: int | None
    log: Path
    database_url: str | None

    @property
    def http_url(self) -> str | None:
        return f"http://{HOST}:{self.port}" if self.port else None

    @property
    def metrics_url(self) -> str | None:
        return f"{self.http_url}/metrics" if self.port and self.spec.metrics else None


def parse_service_spec(pyproject: Path) -> ServiceSpec | None:
    """None when the member declares no service; ServiceSpecError when the declaration is wrong."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    table = data.get("tool", {}).get("prizeflow", {}).get("service")
    if table is None:
        return None
    where = f"{pyproject} [tool.prizeflow.service]"
    if not isinstance(table, dict):
        raise ServiceSpecError(f"{where} must be a table")
    name = table.get("name")
    command = table.get("command")
    if not isinstance(name, str) or not name.replace("-", "_").isidentifier():
        raise ServiceSpecError(f"{where}: `name` must be a simple identifier, got {name!r}")
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise ServiceSpecError(f"{where}: `command` must be a non-empty list of strings")
    optional: dict[str, str | None] = {}
    for key in ("http_port_env", "database", "migrations", "local_env", "local_env_marker"):
        value = table.get(key)
        if value is not None and not isinstance(value, str):
            raise ServiceSpecError(f"{where}: `{key}` must be a string")
        optional[key] = value
    metrics, payouts_needs = table.get("metrics", True), table.get("payouts_needs", False)
    for key, flag in (("metrics", metrics), ("payouts_needs", payouts_needs)):
        if not isinstance(flag, bool):
            raise ServiceSpecError(f"{where}: `{key}` must be true or false")
    if optional["local_env"] is not None and ":" not in optional["local_env"]:
        raise ServiceSpecError(f"{where}: `local_env` must be `module:function`")
    if (optional["local_env"] is None) != (optional["local_env_marker"] is None):
        raise ServiceSpecError(f"{where}: `local_env` and `local_env_marker` come together")
    directory = pyproject.parent
    migrations = directory / optional["migrations"] if optional["migrations"] else None
    return ServiceSpec(
        name=name,
        directory=directory,
        command=tuple(command),
        http_port_env=optional["http_port_env"],
        database=optional["database"],
        migrations=migrations,
        metrics=metrics,
        payouts_needs=payouts_needs,
        local_env=optional["local_env"],
        local_env_marker=optional["local_env_marker"],
    )


def discover_services(root: Path | None = None) -> list[ServiceSpec]:
    """Every workspace member under services/ and tools/ declaring `[tool.prizeflow.service]`."""
    base = resolve_root(root)
    specs: list[ServiceSpec] = []
    for pattern in SERVICE_GLOBS:
        for pyproject in sorted(base.glob(pattern)):
            spec = parse_service_spec(pyproject)
            if spec is not None:
                specs.append(spec)
    names = [s.name for s in specs]
    if duplicates := {n for n in names if names.count(n) > 1}:
        raise ServiceSpecError(f"duplicate service names: {sorted(duplicates)}")
    return specs


def service_argv(spec: ServiceSpec) -> list[str]:
    """`python` means the interpreter running the devstack (the workspace venv)."""
    head, *rest = spec.command
    return [sys.executable if head in {"python", "python3"} else head, *rest]


def health_ok(port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health/ready", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def service_healthy(running: RunningService) -> bool:
    if not pid_alive(running.pid):
        return False
    return running.port is None or health_ok(running.port, timeout=0.5)


def migrate(spec: ServiceSpec, env: dict[str, str], log: Path) -> None:
    assert spec.migrations is not None
    if not spec.migrations.is_file():
        raise ServiceStartError(f"{spec.name}: migrations config {spec.migrations} does not exist")
    with log.open("ab") as out:
        out.write(f"\n=== alembic upgrade head ({time.strftime('%F %T')}) ===\n".encode())
        out.flush()
        result = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(spec.migrations), "upgrade", "head"],
            cwd=spec.directory, env=env, stdout=out, stderr=subprocess.STDOUT, check=False, timeout=300,
        )  # fmt: skip
    if result.returncode != 0:
        raise ServiceStartError(f"{spec.name}: migrations failed (exit {result.returncode})\n{tail(log)}")


def _wait_ready(spec: ServiceSpec, pid: int, port: int | None, log: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    settle = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise ServiceStartError(f"{spec.name} (pid {pid}) exited during startup\n--- {log} ---\n{tail(log)}")
        if port is None and time.monotonic() >= settle:
            return  # no HTTP port declared: alive after a second is all we can check
        if port is not None and health_ok(port):
            return
        time.sleep(0.2)
    raise ServiceStartError(
        f"{spec.name} not ready (GET /health/ready on port {port}) within {deadline_s:.0f}s\n--- {log} ---\n{tail(log)}"
    )


def _running_from_state(spec: ServiceSpec, svc: ServiceState, infra: Infra | None) -> RunningService | None:
    if svc.pid is None or not pid_alive(svc.pid, svc.start_ticks):
        return None
    db_url = infra.database_url(svc.database) if infra and svc.database else None
    return RunningService(spec=spec, pid=svc.pid, port=svc.port, log=Path(svc.log or ""), database_url=db_url)


def _start_one(
    spec: ServiceSpec, infra: Infra, paths: Paths, state: State, deadline_s: float, *, peers: dict[str, str]
) -> RunningService:
    previous = state.services.get(spec.name, ServiceState())
    if (already := _running_from_state(spec, previous, infra)) is not None and service_healthy(already):
        return already
    if previous.pid is not None:
        terminate(previous.pid, group=True, grace=STOP_GRACE_S)  # alive but unhealthy, or stale
    log = paths.service_log(spec.name)
    env = {
        **dev_env(paths),
        **os.environ,
        **peers,
        **infra.env(),
        "PRIZEFLOW_SERVICE_NAME": spec.name,
        "PYTHONUNBUFFERED": "1",
    }
    env.update(peer_settings(peers, os.environ))
    db_url = None
    if spec.database:
        db_url = run_sync(lambda: create_database(infra, spec.database or ""))
        env["DATABASE_URL"] = db_url
    port = None
    if spec.http_port_env:
        port = previous.port or remembered_or_free(None, exclude=state.used_ports())
        env[spec.http_port_env] = str(port)
    if spec.migrations:
        migrate(spec, env, log)
    with log.open("ab") as out:
        out.write(f"\n=== start {' '.join(spec.command)} ({time.strftime('%F %T')}) ===\n".encode())
        out.flush()
        pid = spawn_detached(
            service_argv(spec), cwd=spec.directory, env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    state.services[spec.name] = ServiceState(
        pid=pid, start_ticks=start_ticks(pid), port=port, database=spec.database, log=str(log)
    )
    save_state(paths, state)
    _wait_ready(spec, pid, port, log, deadline_s)
    return RunningService(spec=spec, pid=pid, port=port, log=log, database_url=db_url)


def start_services(
    infra: Infra,
    root: Path | None = None,
    specs: list[ServiceSpec] | None = None,
    *,
    deadline_s: float = READY_DEADLINE_S,
) -> list[RunningService]:
    """Start every discovered service not already running and healthy; idempotent."""
    paths = Paths(resolve_root(root))
    paths.ensure()
    wanted = discover_services(paths.root) if specs is None else specs
    started: list[RunningService] = []
    with locked(paths):
        state = load_state(paths)
        peers = _assign_ports(wanted, state)
        save_state(paths, state)
        for spec in wanted:
            started.append(_start_one(spec, infra, paths, state, deadline_s, peers=peers))
            save_state(paths, state)
    return started


def reserve_ports(specs: list[ServiceSpec], root: Path | None = None) -> dict[str, int]:
    """Fix (and record) the HTTP port of every service with one before any starts, as `start_services` does: what
    watches the services (Prometheus) can then be started first, and see each of them come up."""
    paths = Paths(resolve_root(root))
    paths.ensure()
    with locked(paths):
        state = load_state(paths)
        _assign_ports(specs, state)
        save_state(paths, state)
    return {
        spec.name: port for spec in specs if spec.http_port_env and (port := state.services[spec.name].port) is not None
    }


def peer_url_env(name: str) -> str:
    """The env var through which every service finds another: `soroban-rpc` → `SOROBAN_RPC_URL`."""
    return name.upper().replace("-", "_") + "_URL"


def peer_settings(peers: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """`PEER_SETTINGS` set to their peer's URL and `PEER_TEMPLATES` filled with it, for the peers that run, unless
    `env` has them already."""
    out = {
        setting: peers[peer_url_env(peer)]
        for setting, peer in PEER_SETTINGS.items()
        if setting not in env and peer_url_env(peer) in peers
    }
    out.update(
        (setting, template.format(url=peers[peer_url_env(peer)]))
        for setting, (peer, template) in PEER_TEMPLATES.items()
        if setting not in env and peer_url_env(peer) in peers
    )
    # Identity verification through a vendor that does not run here: none (a subset of the platform, a runbook's
    # drill), rather than a vendor named without its address (payouts refuses to start on that, and rightly).
    if peer_url_env("kyc-api") not in peers and "PAYOUTS_KYC_BASE_URL" not in env:
        out["PAYOUTS_KYC_PROVIDER"] = "none"
    return out


def _alive(svc: ServiceState) -> bool:
    return svc.pid is not None and pid_alive(svc.pid, svc.start_ticks)


def _assign_ports(specs: list[ServiceSpec], state: State) -> dict[str, str]:
    """Fix every service's port before any starts, so each can be told where the others are."""
    peers: dict[str, str] = {}
    for spec in specs:
        if spec.http_port_env is None:
            continue
        previous = state.services.get(spec.name, ServiceState())
        if previous.port is None or not _alive(previous):
            port = remembered_or_free(previous.port, exclude=state.used_ports() - {previous.port or -1})
            state.services[spec.name] = replace(previous, port=port)
        peers[peer_url_env(spec.name)] = f"http://{HOST}:{state.services[spec.name].port}"
    return peers


def running_services(root: Path | None = None, infra: Infra | None = None) -> list[RunningService]:
    """Services recorded in state whose process is alive."""
    paths = Paths(resolve_root(root))
    state = load_state(paths)
    specs = {s.name: s for s in discover_services(paths.root)}
    result = []
    for name, svc in state.services.items():
        spec = specs.get(name) or ServiceSpec(name=name, directory=paths.root, command=("?",))
        if (running := _running_from_state(spec, svc, infra)) is not None:
            result.append(running)
    return result


def stop_services(root: Path | None = None, *, grace: float = STOP_GRACE_S) -> list[str]:
    """SIGTERM each service's process group, SIGKILL after `grace`; forget them in state."""
    paths = Paths(resolve_root(root))
    stopped: list[str] = []
    with locked(paths):
        state = load_state(paths)
        for name, svc in list(state.services.items()):
            if svc.pid is not None and pid_alive(svc.pid, svc.start_ticks):
                if not terminate(svc.pid, group=True, grace=grace):
                    raise ServiceStartError(f"{name} (pid {svc.pid}) survived SIGKILL")
                stopped.append(name)
            state.services[name] = ServiceState(port=svc.port, database=svc.database, log=svc.log)
        save_state(paths, state)
    return stopped
