"""Configuration from the environment. A missing or malformed required setting stops start-up, naming it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_port


@dataclass(frozen=True)
class WhitelistEntry:
    network: str
    address: str
    tag: str | None = None


@dataclass(frozen=True)
class EmulatorSettings:
    api_key: str
    api_secret: str
    host: str = "127.0.0.1"
    port: int = 12112
    balances: Mapping[str, Decimal] = field(default_factory=dict)
    whitelist: tuple[WhitelistEntry, ...] = ()
    whitelist_enabled: bool = True
    recv_window_ms: int = 5000  # the default window of a request's timestamp (a request may give its own)
    auto_settle_ms: int = 0  # 0: withdrawals wait for /_emulator/withdrawals/{id}/settle; else completed after this
    history_lag_ms: int = 0  # a new withdrawal shows in the history only after this long (exchanges lag)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        key = env.get("EXCHANGE_EMULATOR_API_KEY", "")
        secret = env.get("EXCHANGE_EMULATOR_API_SECRET", "")
        if not key:
            raise SettingsError("EXCHANGE_EMULATOR_API_KEY is required: the API key the emulated account accepts")
        if len(secret) < 16:
            raise SettingsError("EXCHANGE_EMULATOR_API_SECRET is required (16 characters at least): the HMAC secret")
        return cls(
            api_key=key,
            api_secret=secret,
            host=env.get("EXCHANGE_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "EXCHANGE_EMULATOR_PORT", 12112),
            balances=balances(env.get("EXCHANGE_EMULATOR_BALANCES", "")),
            whitelist=whitelist(env.get("EXCHANGE_EMULATOR_WHITELIST", "")),
            whitelist_enabled=env.get("EXCHANGE_EMULATOR_WHITELIST_ENABLED", "true").lower() != "false",
            auto_settle_ms=env_int(env, "EXCHANGE_EMULATOR_AUTO_SETTLE_MS", 0, 0, 86_400_000),
            history_lag_ms=env_int(env, "EXCHANGE_EMULATOR_HISTORY_LAG_MS", 0, 0, 86_400_000),
        )


def balances(raw: str) -> dict[str, Decimal]:
    """`COIN:amount` items, e.g. `USDC:100000,XLM:5000.5`."""
    out: dict[str, Decimal] = {}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        match = re.fullmatch(r"([A-Z0-9]{2,10}):(\d{1,15}(?:\.\d{1,18})?)", item)
        if match is None:
            raise SettingsError("EXCHANGE_EMULATOR_BALANCES items are `<COIN>:<decimal amount>`, e.g. USDC:1000")
        try:
            out[match.group(1)] = Decimal(match.group(2))
        except InvalidOperation as err:  # pragma: no cover - the pattern guards it
            raise SettingsError(f"EXCHANGE_EMULATOR_BALANCES: {item!r}") from err
    return out


def whitelist(raw: str) -> tuple[WhitelistEntry, ...]:
    """`NETWORK|address[|tag]` items."""
    out = []
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        parts = item.split("|")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise SettingsError("EXCHANGE_EMULATOR_WHITELIST items are `<NETWORK>|<address>[|<tag>]`")
        out.append(WhitelistEntry(parts[0], parts[1], parts[2] if len(parts) == 3 and parts[2] else None))
    return tuple(out)


__all__ = ["EmulatorSettings", "SettingsError", "WhitelistEntry", "balances", "whitelist"]
