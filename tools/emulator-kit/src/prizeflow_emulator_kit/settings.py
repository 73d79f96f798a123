"""Reading an emulator's settings from the environment. A missing or malformed setting stops start-up, naming the
variable (`SettingsError`; the runner exits 2)."""

from __future__ import annotations

import string
from collections.abc import Mapping


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer within [low, high]; `default` when unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as err:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from err
    if not low <= value <= high:
        raise SettingsError(f"{name} must be within [{low}, {high}], got {value}")
    return value


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    return env_int(env, name, default, 0, 65535)


def env_template(env: Mapping[str, str], name: str) -> str | None:
    """The variable, `${OTHER}` replaced by the variable OTHER (a local stack gives the ingress's address so); None
    when unset or empty."""
    raw = env.get(name) or None
    if raw is None:
        return None
    try:
        return string.Template(raw).substitute(env)
    except (KeyError, ValueError) as err:
        raise SettingsError(f"{name} names a variable that is not set or is malformed ({err})") from None


def env_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) URL (a template, as `env_template`); None when unset."""
    url = env_template(env, name)
    if url is not None and not url.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http(s) URL")
    return url


def env_list(env: Mapping[str, str], name: str, default: str = "") -> tuple[str, ...]:
    """Comma-separated items, blanks dropped."""
    return tuple(item.strip() for item in env.get(name, default).split(",") if item.strip())


__all__ = ["SettingsError", "env_int", "env_list", "env_port", "env_template", "env_url"]
