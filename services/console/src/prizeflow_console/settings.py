"""The console's settings. Production needs every one of them; the dev profile derives what it can from the devstack
(the dev identity provider's URL, the console's own port) and nothing else."""

from __future__ import annotations

import secrets
from typing import Any, Final, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prizeflow_runtime.settings import DEV_ISSUER, DatabaseTimeouts, Profile, async_database_url

DEV_CLIENT_ID: Final = "prizeflow-console"
MIN_SECRET_BYTES: Final = 32


class ConsoleSettings(BaseSettings):
    """Env vars, by field name (upper case). Never echoed when refused: some are secrets."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    prizeflow_profile: Profile = Field(default=Profile.PRODUCTION)
    service_name: str = "console"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True

    console_public_url: str | None = Field(default=None, description="The console's external base URL (https)")
    console_session_secret: SecretStr | None = Field(
        default=None, description="Encrypts the session cookie and keys CSRF tokens (at least 32 bytes)"
    )
    console_session_max_age_s: int = Field(
        default=8 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Absolute timeout: a session ends this long after sign-in",
    )
    console_session_idle_s: int = Field(
        default=30 * 60, ge=60, le=24 * 3600, description="Idle timeout: a session unused this long ends"
    )
    database_url: str | None = Field(default=None, description="The console's sessions (PostgreSQL)")
    database_timeouts: DatabaseTimeouts = Field(default_factory=DatabaseTimeouts)  # DATABASE_*_TIMEOUT_MS
    console_api_timeout_s: float = Field(default=10.0, gt=0, le=120)

    oidc_issuer: str | None = Field(default=None, description="The identity provider's issuer (`iss`)")
    oidc_discovery_url: str | None = Field(default=None, description="Its OpenID configuration document")
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = Field(default=None, description="Only for a confidential client")
    oidc_roles_claim: str = Field(default="roles", min_length=1)
    oidc_scopes: str = "openid profile"

    settlement_url: str | None = None
    rewards_url: str | None = None
    payouts_url: str | None = None
    webhooks_url: str | None = None
    dev_idp_url: str | None = Field(default=None, description="The devstack's identity provider (dev profile only)")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        """`VAR=""` (a template or a secret that rendered empty) is a missing setting, named as one."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """A plain `postgresql://` URI (what the Kubernetes bundle's runtime Secret holds, as every service's) on the
        asyncpg driver the console runs, as the services' settings read it."""
        return async_database_url(url) if url is not None else None

    @property
    def dev(self) -> bool:
        return self.prizeflow_profile is Profile.DEV

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.dev:
            self._dev_defaults()
        missing = [
            name.upper()
            for name in (
                "console_public_url", "console_session_secret", "oidc_issuer", "oidc_discovery_url",
                "oidc_client_id", "settlement_url", "rewards_url", "payouts_url", "webhooks_url", "database_url",
            )
            if getattr(self, name) is None
        ]  # fmt: skip
        if missing:
            raise ValueError(f"not set: {', '.join(missing)}")
        assert self.console_session_secret is not None
        if len(self.console_session_secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"CONSOLE_SESSION_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        schemes = {"http", "https"} if self.dev else {"https"}
        for name in ("console_public_url", "oidc_discovery_url"):
            parts = urlsplit(str(getattr(self, name)))
            if parts.scheme not in schemes or not parts.hostname or parts.username is not None:
                where = "an http(s)://" if self.dev else "an https://"
                raise ValueError(f"{name.upper()} must be {where} URL naming a host (no user or password)")
        return self

    def _dev_defaults(self) -> None:
        if self.console_public_url is None:
            self.console_public_url = f"http://{self.http_host}:{self.http_port}"
        if self.oidc_issuer is None:
            self.oidc_issuer = DEV_ISSUER
        if self.oidc_discovery_url is None and self.dev_idp_url is not None:
            self.oidc_discovery_url = f"{self.dev_idp_url.rstrip('/')}/.well-known/openid-configuration"
        if self.oidc_client_id is None:
            self.oidc_client_id = DEV_CLIENT_ID
        if self.console_session_secret is None:  # per process: dev sessions end when the console restarts
            self.console_session_secret = SecretStr(secrets.token_urlsafe(32))

    @property
    def public_url(self) -> str:
        assert self.console_public_url is not None
        return self.console_public_url.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def service_urls(self) -> dict[str, str]:
        urls = {
            "settlement": self.settlement_url,
            "rewards": self.rewards_url,
            "payouts": self.payouts_url,
            "webhooks": self.webhooks_url,
        }
        return {name: url.rstrip("/") for name, url in urls.items() if url is not None}


__all__ = ["DEV_CLIENT_ID", "ConsoleSettings"]
