"""Emulator configuration from the environment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name


class Faults(BaseModel):
    """Fault injection knobs; rates are probabilities in [0, 1] drawn per request (seeded RNG)."""

    model_config = ConfigDict(extra="forbid")

    try_again_later_rate: float = Field(default=0.0, ge=0, le=1, description="sendTransaction answers TRY_AGAIN_LATER")
    bad_seq_rate: float = Field(default=0.0, ge=0, le=1, description="sendTransaction answers ERROR tx_bad_seq")
    insufficient_fee_rate: float = Field(
        default=0.0, ge=0, le=1, description="sendTransaction answers ERROR tx_insufficient_fee"
    )
    drop_after_accept_rate: float = Field(
        default=0.0, ge=0, le=1, description="PENDING, then silently never included (getTransaction: NOT_FOUND)"
    )
    delay_rate: float = Field(default=0.0, ge=0, le=1, description="share of RPC responses delayed by delay_ms")
    delay_ms: int = Field(default=0, ge=0, description="response delay (client timeouts); the request still applies")
    slow_ledger_ms: int = Field(default=0, ge=0, description="extra time added to every ledger close")
    min_base_fee: int = Field(default=100, ge=0, description="minimum inclusion fee per operation (surge pricing)")


class EmulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    soroban_rpc_host: str = Field(default="127.0.0.1")
    soroban_rpc_port: int = Field(default=8000, ge=0, le=65535)
    stellar_network_passphrase: str = Field(default=TESTNET_PASSPHRASE)
    soroban_emulator_ledger_ms: int = Field(default=5000, ge=10, description="ledger close interval")
    soroban_emulator_ledger_capacity: int = Field(
        default=1000, ge=1, description="operations included per ledger at most"
    )
    soroban_emulator_faults: Faults = Field(default_factory=Faults, description="JSON, see Faults")
    soroban_emulator_seed: int | None = Field(default=None, description="seed of the fault RNG")
    soroban_emulator_accounts: dict[str, dict[str, str]] = Field(
        default_factory=dict, description='genesis accounts: {"G...": {"XLM": "1000", "USDC": "50"}}'
    )
    soroban_emulator_state_file: str | None = Field(default=None, description="JSON snapshot written at every close")
    payout_contract_id: str | None = Field(default=None, description="the emulated payout contract")
    payout_method_name: str = Field(default="distribute_winnings")
    soroban_emulator_contract_asset: str = Field(default="XLM", description="what the emulated contract pays in")
