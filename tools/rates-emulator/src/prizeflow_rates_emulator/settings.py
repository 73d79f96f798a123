"""Configuration from the environment. A missing or malformed setting stops start-up, naming it (the runner exits 2)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from prizeflow_emulator_kit.settings import SettingsError, env_int, env_list, env_port
from prizeflow_rates_emulator.board import CURRENCIES, DEFAULT_RATES, parse_rate


@dataclass(frozen=True)
class EmulatorSettings:
    app_ids: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 12116
    rates: Mapping[str, Decimal] = field(default_factory=dict)  # against USD
    publish_s: int = 60  # a publication every this many seconds of the emulator's clock
    drift_bps: int = 0  # each publication moves every rate by up to this many basis points (a seeded random walk)
    seed: int | None = None
    plan: str = "unlimited"  # `free`: only USD as `base` (403 not_allowed otherwise), as OXR's free plan

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EmulatorSettings:
        env = os.environ if env is None else env
        app_ids = env_list(env, "RATES_EMULATOR_APP_IDS")
        if not app_ids:
            raise SettingsError("RATES_EMULATOR_APP_IDS is required: the comma-separated App IDs accepted")
        plan = env.get("RATES_EMULATOR_PLAN") or "unlimited"
        if plan not in ("unlimited", "free"):
            raise SettingsError("RATES_EMULATOR_PLAN is `unlimited` or `free`")
        return cls(
            app_ids=app_ids,
            host=env.get("RATES_EMULATOR_HOST", "127.0.0.1"),
            port=env_port(env, "RATES_EMULATOR_PORT", 12116),
            rates=_rates(env.get("RATES_EMULATOR_RATES", "")),
            publish_s=env_int(env, "RATES_EMULATOR_PUBLISH_S", 60, 1, 86_400),
            drift_bps=env_int(env, "RATES_EMULATOR_DRIFT_BPS", 0, 0, 1_000),
            seed=env_int(env, "RATES_EMULATOR_SEED", 0, 0, 2**63) if env.get("RATES_EMULATOR_SEED") else None,
            plan=plan,
        )


def _rates(raw: str) -> dict[str, Decimal]:
    """`CODE:rate` items (against USD) over the defaults."""
    out = {code: Decimal(rate) for code, rate in DEFAULT_RATES.items()}
    for item in (i.strip() for i in raw.split(",") if i.strip()):
        code, sep, value = item.partition(":")
        if not sep or code not in CURRENCIES or code == "USD":
            raise SettingsError(f"RATES_EMULATOR_RATES items are `<CODE>:<rate against USD>`, got {item!r}")
        try:
            out[code] = parse_rate(value, code)
        except ValueError as err:
            raise SettingsError(f"RATES_EMULATOR_RATES: {err}") from None
    return out


__all__ = ["EmulatorSettings", "SettingsError"]
