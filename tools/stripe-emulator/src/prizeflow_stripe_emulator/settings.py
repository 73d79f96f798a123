"""Configuration from the environment. A missing or malformed required setting stops start-up, naming it."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port

DEFAULT_API_VERSION = "2024-06-20"


@dataclass(frozen=True)
class WebhookEndpointSetting:
    url: str
    secret: str


@dataclass(frozen=True)
class EmulatorSettings:
    api_keys: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 12111
    public_url: str | None = None
    webhook_endpoints: tuple[WebhookEndpointSetting, ...] = ()
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 8
    webhook_timeout_ms: int = 10_000
    platform_balance: Mapping[str, int] = field(default_factory=dict)
    accounts: tuple[str, ...] = ()
    api_version: str = DEFAULT_API_VERSION
    seed: int | None = None
    payout_auto_settle_ms: int = 0  # 0: payouts wait for /_emulator/payouts/{id}/settle; else paid after this long

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        keys = env_list(env, "STRIPE_EMULATOR_API_KEYS")
        if not keys:
            raise SettingsError("STRIPE_EMULATOR_API_KEYS is required: the comma-separated secret keys accepted")
        return cls(
            api_keys=keys,
            host=env.get("STRIPE_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "STRIPE_EMULATOR_PORT", 12111),
            public_url=env.get("STRIPE_EMULATOR_PUBLIC_URL") or None,
            webhook_endpoints=_endpoints(env.get("STRIPE_EMULATOR_WEBHOOK_ENDPOINTS", ""), env),
            webhook_retry_base_ms=env_int(env, "STRIPE_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=env_int(env, "STRIPE_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
            webhook_timeout_ms=env_int(env, "STRIPE_EMULATOR_WEBHOOK_TIMEOUT_MS", 10_000, 1, 600_000),
            platform_balance=_balances(env.get("STRIPE_EMULATOR_PLATFORM_BALANCE", "")),
            accounts=env_list(env, "STRIPE_EMULATOR_ACCOUNTS"),
            api_version=env.get("STRIPE_EMULATOR_API_VERSION") or DEFAULT_API_VERSION,
            seed=env_int(env, "STRIPE_EMULATOR_SEED", 0, 0, 2**63) if env.get("STRIPE_EMULATOR_SEED") else None,
            payout_auto_settle_ms=env_int(env, "STRIPE_EMULATOR_PAYOUT_AUTO_SETTLE_MS", 0, 0, 86_400_000),
        )


def _endpoints(raw: str, env: Mapping[str, str]) -> tuple[WebhookEndpointSetting, ...]:
    """`url|secret` items; `${NAME}` is replaced by the variable NAME (a local stack gives the webhook service's
    address and the shared endpoint secret that way: `${WEBHOOKS_URL}/providers/stripe/events|${SECRET_VAR}`)."""
    try:
        raw = string.Template(raw).substitute(env)
    except KeyError as err:
        raise SettingsError(f"STRIPE_EMULATOR_WEBHOOK_ENDPOINTS names ${{{err.args[0]}}}, which is not set") from None
    except ValueError as err:
        raise SettingsError(f"STRIPE_EMULATOR_WEBHOOK_ENDPOINTS: {err}") from None
    out = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        url, sep, secret = item.rpartition("|")
        if not sep or not url.startswith(("http://", "https://")) or not secret:
            raise SettingsError("STRIPE_EMULATOR_WEBHOOK_ENDPOINTS items are `<http(s) url>|<secret>`")
        out.append(WebhookEndpointSetting(url, secret))
    return tuple(out)


def _balances(raw: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        match = re.fullmatch(r"([a-zA-Z]{3}):(\d{1,15})", item)
        if match is None:
            raise SettingsError(
                "STRIPE_EMULATOR_PLATFORM_BALANCE items are `<currency>:<minor units>`, e.g. eur:100000"
            )
        out[match.group(1).lower()] = int(match.group(2))
    return out


__all__ = ["EmulatorSettings", "SettingsError", "WebhookEndpointSetting"]
