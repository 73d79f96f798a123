"""`.devstack/state.json` (what runs where) and the `.devstack/lock` that serialises callers."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from prizeflow_devstack.paths import Paths

_T = TypeVar("_T")


@dataclass
class PostgresState:
    port: int | None = None
    pid: int | None = None
    start_ticks: int | None = None  # /proc start time: a recycled pid is not our postmaster
    bin_dir: str | None = None


@dataclass
class KafkaState:
    port: int | None = None
    controller_port: int | None = None
    pid: int | None = None
    start_ticks: int | None = None
    cluster_id: str | None = None


@dataclass
class PrometheusState:
    port: int | None = None
    pid: int | None = None
    start_ticks: int | None = None


@dataclass
class ServiceState:
    pid: int | None = None
    start_ticks: int | None = None
    port: int | None = None
    database: str | None = None
    log: str | None = None


@dataclass
class DockerState:
    postgres_container: str | None = None
    postgres_url: str | None = None
    kafka_container: str | None = None
    kafka_bootstrap: str | None = None


@dataclass
class State:
    postgres: PostgresState = field(default_factory=PostgresState)
    kafka: KafkaState = field(default_factory=KafkaState)
    services: dict[str, ServiceState] = field(default_factory=dict)
    docker: DockerState = field(default_factory=DockerState)
    prometheus: PrometheusState = field(default_factory=PrometheusState)

    def used_ports(self) -> set[int]:
        ports = {self.postgres.port, self.kafka.port, self.kafka.controller_port, self.prometheus.port}
        ports.update(svc.port for svc in self.services.values())
        return {p for p in ports if p is not None}


def _build(cls: type[_T], raw: object) -> _T:
    """Tolerant decoding: unknown keys (from a newer devstack) are ignored, missing ones default."""
    if not isinstance(raw, dict):
        return cls()
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in raw.items() if k in names})


def state_from_dict(raw: dict[str, Any]) -> State:
    services_raw = raw.get("services") or {}
    return State(
        postgres=_build(PostgresState, raw.get("postgres")),
        kafka=_build(KafkaState, raw.get("kafka")),
        services={name: _build(ServiceState, svc) for name, svc in services_raw.items()},
        docker=_build(DockerState, raw.get("docker")),
        prometheus=_build(PrometheusState, raw.get("prometheus")),
    )


def load_state(paths: Paths) -> State:
    try:
        raw = json.loads(paths.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    except (OSError, json.JSONDecodeError) as err:
        raise RuntimeError(f"corrupt devstack state file {paths.state_file}: {err}") from err
    return state_from_dict(raw if isinstance(raw, dict) else {})


def save_state(paths: Paths, state: State) -> None:
    """Atomic replace, so a reader never sees half a file."""
    paths.base.mkdir(parents=True, exist_ok=True)
    tmp = paths.state_file.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(paths.state_file)


_thread_lock = threading.RLock()
_held: dict[Path, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within the process


@contextlib.contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Exclusive `flock` across processes; re-entrant inside one process (ensure_infra inside `up`)."""
    with _thread_lock:
        if lock_path in _held:
            fd, depth = _held[lock_path]
            _held[lock_path] = (fd, depth + 1)
        else:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
            _held[lock_path] = (fd, 1)
        try:
            yield
        finally:
            fd, depth = _held[lock_path]
            if depth == 1:
                del _held[lock_path]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                _held[lock_path] = (fd, depth - 1)


def locked(paths: Paths) -> contextlib.AbstractContextManager[None]:
    return file_lock(paths.lock_file)
