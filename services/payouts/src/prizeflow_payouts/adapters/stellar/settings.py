"""Stellar provider settings: docs/signing-modes.md env names (shared with the signer) plus options from the providers
file. Read once when the provider is built; a bad value stops the service at start-up."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from prizeflow_stellar import DEFAULT_METHOD_NAME, is_account_id, is_contract_id

TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name, not a secret


class StellarMode(StrEnum):
    PAYMENTS = "payments"  # classic payment operations, up to 100 per transaction
    CONTRACT = "contract"  # one call of PAYOUT_CONTRACT_ID.PAYOUT_METHOD_NAME with many winners


class StellarEnv(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    payout_source_account: str = Field(description="Funding account every payment is spent from (G...)")
    payout_channel_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Channel accounts (transaction sources), comma-separated"
    )
    payout_contract_id: str | None = None
    payout_method_name: str = Field(default=DEFAULT_METHOD_NAME, pattern=r"^[A-Za-z0-9_]{1,32}$")
    stellar_network_passphrase: str = Field(default=TESTNET_PASSPHRASE, min_length=1)
    soroban_rpc_url: str = Field(default="http://127.0.0.1:8000/")
    payouts_max_gas_stroops: int = Field(default=2_000_000, gt=0)

    @field_validator("payout_channel_accounts", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("payout_source_account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not is_account_id(value):
            raise ValueError("PAYOUT_SOURCE_ACCOUNT must be a valid G... account")
        return value

    @field_validator("payout_channel_accounts")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not is_account_id(v)]
        if bad:
            raise ValueError(f"channel accounts must be valid G... accounts: {bad}")
        if len(set(value)) != len(value):
            raise ValueError("channel accounts must be distinct")
        return value

    @field_validator("payout_contract_id")
    @classmethod
    def _contract(cls, value: str | None) -> str | None:
        if value and not is_contract_id(value):
            raise ValueError("PAYOUT_CONTRACT_ID must be a valid C... contract id")
        return value or None


__all__ = ["TESTNET_PASSPHRASE", "StellarEnv", "StellarMode"]
