"""Configuration from the environment. A missing or malformed setting stops start-up, naming it (the runner exits 2).

The webhook signing key and certificate come from PEM values or files; only the dev profile (`PRIZEFLOW_PROFILE=dev`)
may go without them, and then a key and a self-signed certificate are generated at start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Final

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port, env_template, env_url
from prizeflow_paypal_emulator.money import CURRENCIES, parse_value
from prizeflow_paypal_emulator.rules import DEFAULT_RULES, Rule, parse_rules
from prizeflow_paypal_emulator.signing import SigningKey, generate, load

DEFAULT_BALANCE: Final = "USD:1000000.00,EUR:1000000.00,GBP:1000000.00,CAD:1000000.00,AUD:1000000.00,JPY:100000000"
DEFAULT_ITEM_FEE: Final = "USD:0.25,EUR:0.25,GBP:0.25,CAD:0.25,AUD:0.25,JPY:30"
DEFAULT_APP_ID: Final = "APP-80W284485P519543T"
DEFAULT_ACCOUNT_ID: Final = "PRIZEFLOWEMU1"
DAY_S: Final = 86_400
_WEBHOOK_ID: Final = re.compile(r"[A-Za-z0-9]{1,50}")
_PAYER_ID: Final = re.compile(r"[A-Z0-9]{13}")


@dataclass(frozen=True)
class EmulatorSettings:
    clients: Mapping[str, str]  # REST app client id → secret (HTTP Basic on /v1/oauth2/token)
    signing: SigningKey = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 12117
    public_url: str | None = None  # where clients reach it: links and PAYPAL-CERT-URL (default http://host:port)
    app_id: str = DEFAULT_APP_ID
    account_id: str = DEFAULT_ACCOUNT_ID  # the business account's payer id (Transaction Search `account_number`)
    token_ttl_s: int = 32_400  # PayPal's tokens live nine hours
    balances: Mapping[str, Decimal] = field(default_factory=dict)  # opening balance per currency
    item_fees: Mapping[str, Decimal] = field(default_factory=dict)  # per item, in its currency (none listed: 0)
    process_ms: int = 1000  # a batch's items are processed this long after it is accepted (emulator clock)
    unclaimed_days: int = 30  # an UNCLAIMED item is RETURNED this long after it was processed
    reporting_delay_s: int = 0  # Transaction Search lists a movement this long after it happened (PayPal: up to 3 h)
    webhook_url: str | None = None
    webhook_id: str | None = None  # the webhook's id in the REST app (part of every signature)
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 8
    webhook_timeout_ms: int = 10_000
    rules: tuple[Rule, ...] = DEFAULT_RULES
    seed: int | None = None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        url = env_url(env, "PAYPAL_EMULATOR_WEBHOOK_URL")
        webhook_id = env.get("PAYPAL_EMULATOR_WEBHOOK_ID") or None
        if (url is None) != (webhook_id is None):
            raise SettingsError("PAYPAL_EMULATOR_WEBHOOK_URL and PAYPAL_EMULATOR_WEBHOOK_ID go together")
        if webhook_id is not None and not _WEBHOOK_ID.fullmatch(webhook_id):
            raise SettingsError("PAYPAL_EMULATOR_WEBHOOK_ID is 1-50 letters and digits (PayPal's webhook id)")
        account_id = env.get("PAYPAL_EMULATOR_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID
        if not _PAYER_ID.fullmatch(account_id):
            raise SettingsError("PAYPAL_EMULATOR_ACCOUNT_ID is a payer id: 13 capital letters and digits")
        return cls(
            clients=_clients(env),
            signing=_signing(env),
            host=env.get("PAYPAL_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "PAYPAL_EMULATOR_PORT", 12117),
            public_url=env_url(env, "PAYPAL_EMULATOR_PUBLIC_URL"),
            app_id=env.get("PAYPAL_EMULATOR_APP_ID") or DEFAULT_APP_ID,
            account_id=account_id,
            token_ttl_s=env_int(env, "PAYPAL_EMULATOR_TOKEN_TTL_S", 32_400, 1, 10 * DAY_S),
            balances=_per_currency(env, "PAYPAL_EMULATOR_BALANCE", DEFAULT_BALANCE),
            item_fees=_per_currency(env, "PAYPAL_EMULATOR_ITEM_FEE", DEFAULT_ITEM_FEE),
            process_ms=env_int(env, "PAYPAL_EMULATOR_PROCESS_MS", 1000, 0, 30 * DAY_S * 1000),
            unclaimed_days=env_int(env, "PAYPAL_EMULATOR_UNCLAIMED_DAYS", 30, 1, 365),
            reporting_delay_s=env_int(env, "PAYPAL_EMULATOR_REPORTING_DELAY_S", 0, 0, DAY_S),
            webhook_url=url,
            webhook_id=webhook_id,
            webhook_retry_base_ms=env_int(env, "PAYPAL_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=env_int(env, "PAYPAL_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
            webhook_timeout_ms=env_int(env, "PAYPAL_EMULATOR_WEBHOOK_TIMEOUT_MS", 10_000, 1, 600_000),
            rules=_rules(env),
            seed=env_int(env, "PAYPAL_EMULATOR_SEED", 0, 0, 2**63) if env.get("PAYPAL_EMULATOR_SEED") else None,
        )


def _clients(env: Mapping[str, str]) -> dict[str, str]:
    items = env_list(env, "PAYPAL_EMULATOR_CLIENTS")
    if not items:
        raise SettingsError("PAYPAL_EMULATOR_CLIENTS is required: comma-separated `client_id:secret` pairs")
    out = {}
    for item in items:
        client_id, sep, secret = item.partition(":")
        if not sep or not client_id or not secret:
            raise SettingsError("PAYPAL_EMULATOR_CLIENTS items are `client_id:secret`")
        out[client_id] = secret
    return out


def _per_currency(env: Mapping[str, str], name: str, default: str) -> dict[str, Decimal]:
    """`CUR:amount` items (each with the currency's decimals: USD:1000.00, JPY:1000)."""
    raw = env.get(name) or default
    out: dict[str, Decimal] = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        currency, sep, value = item.partition(":")
        parsed = parse_value(value, currency) if sep and currency in CURRENCIES else None
        if parsed is None:
            raise SettingsError(
                f"{name} items are `<currency>:<amount with the currency's decimals>` (USD:1000.00, JPY:1000), "
                f"got {item!r}"
            )
        out[currency] = parsed
    return out


def _rules(env: Mapping[str, str]) -> tuple[Rule, ...]:
    raw = env.get("PAYPAL_EMULATOR_RULES")
    if not raw:
        return DEFAULT_RULES
    try:
        return tuple(parse_rules(json.loads(raw)))
    except ValueError as err:
        raise SettingsError(f"PAYPAL_EMULATOR_RULES: {err}") from None


def _pem(env: Mapping[str, str], name: str) -> bytes | None:
    """`NAME` (the PEM itself, `${VAR}` expanded) or `NAME_FILE` (a path to it); None when neither is set."""
    value, path = env_template(env, name), env.get(f"{name}_FILE") or None
    if value is not None and path is not None:
        raise SettingsError(f"{name} and {name}_FILE are exclusive")
    if path is not None:
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise SettingsError(f"{name}_FILE cannot be read ({err.strerror})") from None
    return value.encode() if value is not None else None


def _signing(env: Mapping[str, str]) -> SigningKey:
    key, cert = _pem(env, "PAYPAL_EMULATOR_SIGNING_KEY"), _pem(env, "PAYPAL_EMULATOR_SIGNING_CERT")
    if key is None and cert is None:
        if env.get("PRIZEFLOW_PROFILE") != "dev":
            raise SettingsError(
                "PAYPAL_EMULATOR_SIGNING_KEY(_FILE) and PAYPAL_EMULATOR_SIGNING_CERT(_FILE) are required: the webhook "
                "signing key and its certificate (only PRIZEFLOW_PROFILE=dev generates them at start-up)"
            )
        return generate()
    if key is None or cert is None:
        raise SettingsError("PAYPAL_EMULATOR_SIGNING_KEY(_FILE) and PAYPAL_EMULATOR_SIGNING_CERT(_FILE) go together")
    try:
        return load(key, cert)
    except ValueError as err:
        raise SettingsError(f"PAYPAL_EMULATOR_SIGNING_KEY / _CERT: {err}") from None


__all__ = ["DAY_S", "DEFAULT_BALANCE", "DEFAULT_ITEM_FEE", "EmulatorSettings", "SettingsError"]
