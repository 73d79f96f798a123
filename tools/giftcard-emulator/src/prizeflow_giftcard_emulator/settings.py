"""Configuration from the environment. A missing or malformed required setting stops start-up, naming it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port, env_template, env_url


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
        keys = env_list(env, "GIFTCARD_EMULATOR_API_KEYS")
        if not keys:
            raise SettingsError("GIFTCARD_EMULATOR_API_KEYS is required: the comma-separated API keys accepted")
        url = env_url(env, "GIFTCARD_EMULATOR_WEBHOOK_URL")
        key = env_template(env, "GIFTCARD_EMULATOR_WEBHOOK_PRIVATE_KEY")
        if (url is None) != (key is None):
            raise SettingsError("GIFTCARD_EMULATOR_WEBHOOK_URL and GIFTCARD_EMULATOR_WEBHOOK_PRIVATE_KEY go together")
        conflict = env.get("GIFTCARD_EMULATOR_EXTERNAL_ID_CONFLICT", "replay")
        if conflict not in ("replay", "reject"):
            raise SettingsError("GIFTCARD_EMULATOR_EXTERNAL_ID_CONFLICT is `replay` or `reject`")
        return cls(
            api_keys=keys,
            host=env.get("GIFTCARD_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "GIFTCARD_EMULATOR_PORT", 12112),
            webhook_url=url,
            webhook_private_key=key,
            webhook_retry_base_ms=env_int(env, "GIFTCARD_EMULATOR_WEBHOOK_RETRY_BASE_MS", 1000, 1, 3_600_000),
            webhook_max_attempts=env_int(env, "GIFTCARD_EMULATOR_WEBHOOK_MAX_ATTEMPTS", 8, 1, 100),
            webhook_timeout_ms=env_int(env, "GIFTCARD_EMULATOR_WEBHOOK_TIMEOUT_MS", 10_000, 1, 600_000),
            balances=_balances(env.get("GIFTCARD_EMULATOR_BALANCE", "USD:1000000")),
            external_id_conflict=conflict,
            delivery_delay_ms=env_int(env, "GIFTCARD_EMULATOR_DELIVERY_DELAY_MS", 0, 0, 86_400_000),
            approvals_required=env.get("GIFTCARD_EMULATOR_APPROVALS", "") in ("1", "true"),
            links_for_email=env.get("GIFTCARD_EMULATOR_LINKS_FOR_EMAIL", "") in ("1", "true"),
        )


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
