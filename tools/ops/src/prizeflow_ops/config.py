"""Where the services are and who is asking: read from the environment, checked before any request is made.

`PRIZEFLOW_OPS_TOKEN` (a bearer token from the identity provider; in the dev profile `prizeflow-dev token`) and
one `PRIZEFLOW_<SERVICE>_URL` per service a command talks to. With `PRIZEFLOW_PROFILE=dev` a URL that is not set
comes from the running devstack's `.devstack/state.json`. Outside the dev profile a token is never sent in clear:
an `http://` URL is refused unless it points at this machine (a port-forward) or `PRIZEFLOW_OPS_ALLOW_HTTP=true`.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

SETTLEMENT: Final = "settlement"
REWARDS: Final = "rewards"
PAYOUTS: Final = "payouts"
WEBHOOKS: Final = "webhooks"
# Every service with an admin API, in the order a fan-out reports them.
SERVICES: Final = (SETTLEMENT, REWARDS, PAYOUTS, WEBHOOKS)
# Services whose consumers dead-letter records (the webhook ingress consumes nothing; the signer has no API).
DEAD_LETTER_SERVICES: Final = (SETTLEMENT, REWARDS, PAYOUTS)

TOKEN_ENV: Final = "PRIZEFLOW_OPS_TOKEN"  # noqa: S105 - the name of the variable, not a token
TIMEOUT_ENV: Final = "PRIZEFLOW_OPS_TIMEOUT_S"
ALLOW_HTTP_ENV: Final = "PRIZEFLOW_OPS_ALLOW_HTTP"
DEFAULT_TIMEOUT_S: Final = 10.0
_LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
_DEV_HOST: Final = "127.0.0.1"


def url_env(service: str) -> str:
    """`rewards` → `PRIZEFLOW_REWARDS_URL`."""
    return f"PRIZEFLOW_{service.upper().replace('-', '_')}_URL"


class ConfigError(Exception):
    """A setting is missing or unusable; `setting` names the environment variable (never its value)."""

    def __init__(self, setting: str, detail: str) -> None:
        super().__init__(f"{setting}: {detail}")
        self.setting = setting
        self.detail = detail


@dataclass(frozen=True)
class OpsConfig:
    token: str = field(repr=False)
    urls: Mapping[str, str]
    timeout_s: float = DEFAULT_TIMEOUT_S

    def url(self, service: str) -> str:
        return self.urls[service]


def load_config(env: Mapping[str, str], services: Iterable[str], *, cwd: Path | None = None) -> OpsConfig:
    """The token and the URLs of `services`, or a `ConfigError` naming the first setting that is missing or wrong."""
    token = env.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            TOKEN_ENV,
            "is not set: an ops bearer token from the identity provider "
            "(dev profile: export PRIZEFLOW_OPS_TOKEN=$(uv run prizeflow-dev token --role ops --user $USER))",
        )
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ConfigError(TOKEN_ENV, "is not a bearer token (it contains whitespace or control characters)")
    dev = env.get("PRIZEFLOW_PROFILE", "production") == "dev"
    allow_http = env.get(ALLOW_HTTP_ENV, "").lower() in {"1", "true", "yes"}
    dev_ports: dict[str, int] | None = None
    urls: dict[str, str] = {}
    for service in services:
        name = url_env(service)
        url = env.get(name, "").strip()
        if not url and dev:
            if dev_ports is None:
                dev_ports = devstack_ports(env, cwd)
            if service in dev_ports:
                url = f"http://{_DEV_HOST}:{dev_ports[service]}"
        if not url:
            where = (
                " nor recorded in the running devstack's state"
                if dev
                else " (PRIZEFLOW_PROFILE=dev reads the devstack's)"
            )
            raise ConfigError(
                name, f"is not set{where}: the {service} service's base URL, e.g. https://{service}.example"
            )
        urls[service] = _checked_url(name, url, dev=dev, allow_http=allow_http)
    return OpsConfig(token=token, urls=urls, timeout_s=_timeout(env))


def _checked_url(name: str, url: str, *, dev: bool, allow_http: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(name, "must be an absolute http(s):// URL")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(name, "must be a base URL without credentials, query or fragment")
    if parts.scheme == "http" and not (dev or allow_http or parts.hostname in _LOOPBACK):
        raise ConfigError(
            name, f"is plain http: the ops token would travel in clear (use https, or {ALLOW_HTTP_ENV}=true)"
        )
    return url.rstrip("/")


def _timeout(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(TIMEOUT_ENV, "must be a number of seconds") from None
    if not 0 < value <= 300:
        raise ConfigError(TIMEOUT_ENV, "must be between 0 and 300 seconds")
    return value


def devstack_ports(env: Mapping[str, str], cwd: Path | None = None) -> dict[str, int]:
    """The HTTP port of each service the devstack recorded (`.devstack/state.json` of the checkout), or {}."""
    root = _workspace_root(env, cwd or Path.cwd())
    if root is None:
        return {}
    try:
        state = json.loads((root / ".devstack" / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    services = state.get("services") if isinstance(state, dict) else None
    if not isinstance(services, dict):
        return {}
    return {
        name: svc["port"]
        for name, svc in services.items()
        if isinstance(svc, dict) and isinstance(svc.get("port"), int) and not isinstance(svc.get("port"), bool)
    }


def _workspace_root(env: Mapping[str, str], cwd: Path) -> Path | None:
    """`PRIZEFLOW_ROOT`, else the nearest directory above `cwd` whose pyproject.toml declares the uv workspace."""
    if explicit := env.get("PRIZEFLOW_ROOT"):
        return Path(explicit)
    here = cwd.resolve()
    for candidate in (here, *here.parents):
        pyproject = candidate / "pyproject.toml"
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        if "workspace" in data.get("tool", {}).get("uv", {}):
            return candidate
    return None


__all__ = [
    "DEAD_LETTER_SERVICES",
    "SERVICES",
    "TOKEN_ENV",
    "ConfigError",
    "OpsConfig",
    "devstack_ports",
    "load_config",
    "url_env",
]
