"""Configuration from the environment. Outside the dev profile nothing starts; a missing or malformed setting
stops start-up, naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from prizeflow_runtime.settings import DEV_ISSUER, audience_for

CLIENT_ID: Final = "prizeflow-console"
# The services whose APIs the console calls with the access token (each verifies its own audience).
SERVICE_AUDIENCES: Final = tuple(audience_for(s) for s in ("settlement", "rewards", "payouts", "webhooks"))
CALLBACK_PATH: Final = "/auth/callback"


class SettingsError(ValueError):
    """A setting is missing or malformed, or the profile is not dev; the message names the variable."""


@dataclass(frozen=True)
class IdpSettings:
    port: int
    public_url: str  # where browsers and the console reach this provider (the discovery document's endpoints)
    jwks_url: str  # the run's dev identity: its private key lies beside this file:// JWKS
    redirect_uris: frozenset[str]  # exact matches only
    host: str = "127.0.0.1"
    issuer: str = DEV_ISSUER
    audiences: tuple[str, ...] = SERVICE_AUDIENCES
    roles_claim: str = "roles"
    client_id: str = CLIENT_ID
    log_json: bool = False

    @property
    def redirect_origins(self) -> frozenset[str]:
        """Where a signed-out browser may be sent back to: the origins of the registered redirect URIs."""
        return frozenset(origin(uri) for uri in self.redirect_uris)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdpSettings:
        env = os.environ if env is None else env
        profile = env.get("PRIZEFLOW_PROFILE", "")
        if profile != "dev":
            found = f"is {profile!r}" if profile else "is not set"
            raise SettingsError(
                f"PRIZEFLOW_PROFILE {found}: the dev identity provider signs anyone in as anyone, "
                "so it runs with PRIZEFLOW_PROFILE=dev only (production signs in through the identity provider)"
            )
        jwks_url = env.get("JWT_JWKS_URL", "")
        if not jwks_url.startswith("file://"):
            raise SettingsError("JWT_JWKS_URL must be the dev identity's file:// JWKS (its private key lies beside it)")
        port = _port(env, "DEV_IDP_PORT")
        host = env.get("DEV_IDP_HOST") or "127.0.0.1"
        public_url = (env.get("DEV_IDP_URL") or f"http://{host}:{port}").rstrip("/")
        _absolute("DEV_IDP_URL", public_url)
        uris: set[str] = set()
        if console := env.get("CONSOLE_URL", "").strip().rstrip("/"):
            _absolute("CONSOLE_URL", console)
            uris.add(console + CALLBACK_PATH)
        for uri in (u.strip() for u in env.get("DEV_IDP_REDIRECT_URIS", "").split(",")):
            if uri:
                _absolute("DEV_IDP_REDIRECT_URIS", uri)
                uris.add(uri)
        audiences = SERVICE_AUDIENCES
        if shared := env.get("JWT_AUDIENCE"):  # every service then verifies this audience instead of its own
            audiences = (*audiences, shared)
        return cls(
            port=port,
            host=host,
            public_url=public_url,
            jwks_url=jwks_url,
            redirect_uris=frozenset(uris),
            issuer=env.get("JWT_ISSUER") or DEV_ISSUER,
            audiences=audiences,
            roles_claim=env.get("JWT_ROLES_CLAIM") or "roles",
            log_json=env.get("LOG_JSON", "").lower() in {"1", "true", "yes"},
        )


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _port(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "")
    if not raw:
        raise SettingsError(f"{name} is required: the port to listen on")
    try:
        value = int(raw)
    except ValueError as err:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from err
    if not 0 < value < 65536:
        raise SettingsError(f"{name} must be within [1, 65535], got {value}")
    return value


def _absolute(name: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.fragment or parts.username:
        raise SettingsError(f"{name} must hold absolute http(s) URLs without credentials or fragment, got {url!r}")


__all__ = ["CALLBACK_PATH", "CLIENT_ID", "SERVICE_AUDIENCES", "IdpSettings", "SettingsError", "origin"]
