"""Where the devstack keeps things: repo root discovery, the ignored `.devstack/` tree, the jar cache."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path


class RootNotFoundError(RuntimeError):
    """No uv workspace root above the working directory (and no PRIZEFLOW_ROOT)."""


def _is_workspace_root(directory: Path) -> bool:
    pyproject = directory / "pyproject.toml"
    if not pyproject.is_file():
        return False
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return "workspace" in data.get("tool", {}).get("uv", {})


def find_root(start: Path | None = None) -> Path:
    """The directory holding the `[tool.uv.workspace]` pyproject; `PRIZEFLOW_ROOT` wins."""
    if start is None and (env_root := os.environ.get("PRIZEFLOW_ROOT")):
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if _is_workspace_root(candidate):
            return candidate
    raise RootNotFoundError(
        f"no pyproject.toml with [tool.uv.workspace] above {here}; set PRIZEFLOW_ROOT to the repo root"
    )


def resolve_root(root: Path | None) -> Path:
    """An explicit root is taken as is (resolved); otherwise discovered."""
    return root.resolve() if root is not None else find_root()


def cache_dir() -> Path:
    if explicit := os.environ.get("PRIZEFLOW_CACHE_DIR"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "prizeflow"


@dataclass(frozen=True)
class Paths:
    """Every file the devstack writes under `<root>/.devstack/`."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / ".devstack"

    @property
    def state_file(self) -> Path:
        return self.base / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.base / "lock"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def pg_dir(self) -> Path:
        return self.base / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_log(self) -> Path:
        return self.pg_dir / "postgres.log"

    @property
    def kafka_dir(self) -> Path:
        return self.base / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def kafka_log4j(self) -> Path:
        return self.kafka_dir / "log4j2.properties"

    @property
    def kafka_formatted_marker(self) -> Path:
        return self.kafka_dir / "formatted"

    @property
    def kafka_log(self) -> Path:
        return self.logs / "kafka.log"

    @property
    def kafka_stdout(self) -> Path:
        return self.logs / "kafka.stdout.log"

    @property
    def prometheus_dir(self) -> Path:
        return self.base / "prometheus"

    @property
    def prometheus_data(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def prometheus_log(self) -> Path:
        return self.logs / "prometheus.log"

    def service_log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def ensure(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
