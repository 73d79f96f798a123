"""Configuration from the environment. A missing or malformed required setting stops start-up, naming it."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class EmulatorSettings:
    api_keys: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 12112
    webhook_url: str | None = None
    webhook_private_key: str | None = None
    webhook_retry_base_ms: int = 1000
    webhook_max_attempts: int = 8
    webhook_timeout_ms: int = 10_000
    # Funding source `balance`, per currency, in decimal units ("USD:100000.00").
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    # `replay` (what Tremendous documents: any order with a known external_id answers the first order, 201) or
    # `reject` (a different body under a known external_id answers 409).
    external_id_conflict: str = "replay"
    delivery_delay_ms: int = 0  # an EMAIL reward is SCHEDULED this long before SUCCEEDED (0: at once)
    approvals_required: bool = False  # every order waits in PENDING APPROVAL
    links_for_email: bool = False  # answers show an EMAIL reward's link too (tests prove a client drops it)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        keys = tuple(k.strip() for k in env.get("GIFTCARD_EMULATOR_API_KEYS", "").split(",") if k.strip())
        if not keys:
            raise SettingsError("GIFTCARD_EMULATOR_API_KEYS is required: the comma-separated API keys accepted")
        url = _template(env, "GIFTCARD_EMULATOR_WEBHOOK_URL")
        key = _template(env, "GIFTCARD_EMULATOR_WEBHOOK_PRIVATE_KEY")
        if (url is None) != (key is None):
            raise SettingsError("GIFTCARD_EMULATOR_WEBHOOK_URL and GIFTCARD_EMULATOR_WEBHOOK_PRIVATE_KEY go together")
        if url is not None and not url.startswith(("http://", "https://")):
            raise SettingsError("GIFTCARD_EMULATOR_WEBHOOK_URL must be an http(s) URL")
        conflict = env.get("GIFTCARD_EMULATOR_EXTERNAL_ID_CONFLICT", "replay")
        if conflict not in ("replay", "reject"):
            raise SettingsError("GIFTCARD_EMULATOR_EXTERNAL_ID_CONFLICT is `replay` or `reject`")
        return cls(
            api_keys=keys,
            host=env.get("GIFTCARD_EMULATOR_HOST", "127.0.0.1"),
            port=_int(env, "GIFTCARD_EMULATOR_PORT", 12112, 0, 65535),
            webhook_url=url,
            webhook_private_key=key,
            webhook_retry_base_ms=_int(env, "GIFTCARD_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=_int(env, "GIFTCARD_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
            webhook_timeout_ms=_int(env, "GIFTCARD_EMULATOR_WEBHOOK_TIMEOUT_MS", 10_000, 1, 600_000),
            balances=_balances(env.get("GIFTCARD_EMULATOR_BALANCE", "USD:1000000")),
            external_id_conflict=conflict,
            delivery_delay_ms=_int(env, "GIFTCARD_EMULATOR_DELIVERY_DELAY_MS", 0, 0, 86_400_000),
            approvals_required=env.get("GIFTCARD_EMULATOR_APPROVALS", "") in ("1", "true"),
            links_for_email=env.get("GIFTCARD_EMULATOR_LINKS_FOR_EMAIL", "") in ("1", "true"),
        )


def _template(env: Mapping[str, str], name: str) -> str | None:
    """The variable, `${OTHER}` replaced by the variable OTHER (a local stack gives the ingress's address so)."""
    raw = env.get(name) or None
    if raw is None:
        return None
    try:
        return string.Template(raw).substitute(env)
    except (KeyError, ValueError) as err:
        raise SettingsError(f"{name} names a variable that is not set or is malformed ({err})") from None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
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


def _balances(raw: str) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        match = re.fullmatch(r"([A-Z]{3}):(\d{1,15}(?:\.\d{1,2})?)", item)
        if match is None:
            raise SettingsError("GIFTCARD_EMULATOR_BALANCE items are `<CURRENCY>:<amount>`, e.g. USD:1000.00")
        try:
            out[match.group(1)] = Decimal(match.group(2))
        except InvalidOperation as err:  # pragma: no cover - the pattern admits decimals only
            raise SettingsError(f"GIFTCARD_EMULATOR_BALANCE: {item}") from err
    return out


__all__ = ["EmulatorSettings", "SettingsError"]
