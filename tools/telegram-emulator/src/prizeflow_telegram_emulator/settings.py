"""The emulator's settings, from the environment (`TELEGRAM_EMULATOR_*`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from prizeflow_emulator_kit.settings import SettingsError, env_list, env_port
from prizeflow_telegram_emulator.state import Gift

# Two gifts of the real catalogue's shape (ids are opaque strings there too).
DEFAULT_GIFTS = '[{"id": "5170145012310081615", "star_count": 15}, {"id": "5170233102089322756", "star_count": 25}]'


@dataclass(frozen=True)
class EmulatorSettings:
    tokens: frozenset[str]
    host: str = "127.0.0.1"
    port: int = 8082
    balance: int = 1_000_000
    gifts: tuple[Gift, ...] = field(default_factory=tuple)
    hang_ms: int = 30_000  # how long a `timeout_after_success` answer is held back (longer than any client waits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        tokens = frozenset(env_list(env, "TELEGRAM_EMULATOR_TOKENS"))
        if not tokens:
            raise SettingsError("TELEGRAM_EMULATOR_TOKENS (comma-separated bot tokens it accepts) is not set")
        try:
            raw = json.loads(env.get("TELEGRAM_EMULATOR_GIFTS", DEFAULT_GIFTS))
            gifts = tuple(
                Gift(str(g["id"]), int(g["star_count"]), g.get("total_count"), g.get("total_count")) for g in raw
            )
            return cls(
                tokens=tokens,
                host=env.get("TELEGRAM_EMULATOR_HOST", "127.0.0.1"),
                port=env_port(env, "TELEGRAM_EMULATOR_PORT", 8082),
                balance=int(env.get("TELEGRAM_EMULATOR_BALANCE", "1000000")),
                gifts=gifts,
                hang_ms=int(env.get("TELEGRAM_EMULATOR_HANG_MS", "30000")),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise SettingsError(f"invalid TELEGRAM_EMULATOR_* setting ({type(err).__name__}: {err})") from None


__all__ = ["DEFAULT_GIFTS", "EmulatorSettings", "SettingsError"]
