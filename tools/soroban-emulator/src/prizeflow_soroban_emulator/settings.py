"""Emulator configuration from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from prizeflow_emulator_kit.faults import Knobs
from prizeflow_emulator_kit.settings import SettingsError

TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name


@dataclass
class Faults(Knobs):
    """The network's faults (the emulator kit's knobs): rates are probabilities in [0, 1] drawn per request from the
    ledger's seeded RNG."""

    try_again_later_rate: float = 0.0  # sendTransaction answers TRY_AGAIN_LATER
    bad_seq_rate: float = 0.0  # sendTransaction answers ERROR tx_bad_seq
    insufficient_fee_rate: float = 0.0  # sendTransaction answers ERROR tx_insufficient_fee
    drop_after_accept_rate: float = 0.0  # PENDING, then silently never included (getTransaction: NOT_FOUND)
    delay_rate: float = 0.0  # share of RPC responses delayed by delay_ms
    delay_ms: int = 0  # response delay (client timeouts); the request still applies
    slow_ledger_ms: int = 0  # extra time added to every ledger close
    min_base_fee: int = 100  # minimum inclusion fee per operation (surge pricing)


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    soroban_rpc_host: str = Field(default="127.0.0.1")
    soroban_rpc_port: int = Field(default=8000, ge=0, le=65535)
    stellar_network_passphrase: str = Field(default=TESTNET_PASSPHRASE)
    soroban_emulator_ledger_ms: int = Field(default=5000, ge=10, description="ledger close interval")
    soroban_emulator_ledger_capacity: int = Field(
        default=1000, ge=1, description="operations included per ledger at most"
    )
    soroban_emulator_faults: dict[str, Any] = Field(default_factory=dict, description="JSON, the knobs of Faults")
    soroban_emulator_seed: int | None = Field(default=None, description="seed of the fault RNG")
    soroban_emulator_accounts: dict[str, dict[str, str]] = Field(
        default_factory=dict, description='genesis accounts: {"G...": {"XLM": "1000", "USDC": "50"}}'
    )
    soroban_emulator_state_file: str | None = Field(default=None, description="JSON snapshot written at every close")
    payout_contract_id: str | None = Field(default=None, description="the emulated payout contract")
    payout_method_name: str = Field(default="distribute_winnings")
    soroban_emulator_contract_asset: str = Field(default="XLM", description="what the emulated contract pays in")

    def faults(self) -> Faults:
        """The initial faults (SOROBAN_EMULATOR_FAULTS), checked."""
        try:
            return Faults.parse(self.soroban_emulator_faults)
        except ValueError as err:
            raise SettingsError(f"SOROBAN_EMULATOR_FAULTS: {err}") from None


def settings_from_env() -> EmulatorSettings:
    """The settings, or SettingsError naming every variable that is wrong."""
    try:
        settings = EmulatorSettings()
    except ValidationError as err:
        wrong = ", ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in err.errors())
        raise SettingsError(wrong) from None
    settings.faults()
    return settings


__all__ = ["TESTNET_PASSPHRASE", "EmulatorSettings", "Faults", "settings_from_env"]
