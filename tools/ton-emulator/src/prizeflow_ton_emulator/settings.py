"""Emulator configuration from the environment."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from prizeflow_emulator_kit.settings import SettingsError


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    ton_emulator_host: str = Field(default="127.0.0.1")
    ton_emulator_port: int = Field(default=8081, ge=0, le=65535)
    ton_emulator_block_ms: int = Field(default=1000, ge=10, description="block interval (mempool inclusion)")
    ton_emulator_fee_nanotons: int = Field(default=3_000_000, ge=0, description="fee of every transaction")
    ton_emulator_seed: int | None = Field(default=None, description="seed of the fault RNG")
    ton_emulator_api_key: str | None = Field(
        default=None, description="when set, every /api/v2 call needs this X-API-Key (toncenter's header)"
    )
    ton_emulator_genesis: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict,
        description='JSON: {"wallets": [{"address", "public_key" (hex), "balance", "type" (v4r2 | highload_v3), '
        '"subwallet_id", "timeout" (highload)}], '
        '"jettons": [{"master", "owner", "jetton_wallet", "balance"}]}',
    )


def settings_from_env() -> EmulatorSettings:
    """The settings, or SettingsError naming every variable that is wrong."""
    try:
        return EmulatorSettings()
    except ValidationError as err:
        wrong = ", ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors())
        raise SettingsError(wrong) from None


__all__ = ["EmulatorSettings", "settings_from_env"]
