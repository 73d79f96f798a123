"""Signer settings: the runtime's (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, HTTP_PORT, ...) plus its own.

Secrets (hot key, PKCS#11 PIN) are `SecretStr` so they never reach a log line or a repr. The key settings of
the chosen backend are checked when the settings load, naming the missing env var; the SoftHSM2 library is a
default of the dev profile only (a production signer names its HSM's PKCS#11 library).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from prizeflow_runtime.settings import Profile, ServiceSettings
from prizeflow_stellar.envelopes import TIME_BOUND_MARGIN_S

TESTNET_PASSPHRASE = "Test SDF Network ; September 2015"  # noqa: S105 - a public network name
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
_XLM = 10_000_000  # stroops in one unit
_TON = 1_000_000_000  # nanotons in one TON
_USDT = 1_000_000  # units of one USDT (6 decimals)
TON_V4R2_SUBWALLET = 698983191
TON_HIGHLOAD_SUBWALLET = 0x10AD  # highload wallet v3's recommended subwallet id


class BackendKind(StrEnum):
    HOT_KEY = "hot_key"
    PKCS11 = "pkcs11"
    EXTERNAL = "external"


def _split(value: Any) -> Any:
    """Comma-separated env values ("GA..,GB..") or JSON lists both work."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class SignerSettings(ServiceSettings):
    verifies_tokens = False  # no inbound API but health and metrics: no bearer token to verify

    service_name: str = Field(default="signer", description="Name in logs, metrics and CloudEvents source")
    http_port: int = Field(default=8040, ge=0, le=65535)

    stellar_network_passphrase: str = Field(default=TESTNET_PASSPHRASE, min_length=1)
    payout_source_account: str = Field(description="The funding account every payment is spent from (G...)")
    signer_channel_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Channel accounts allowed as transaction source (comma-separated)"
    )
    payouts_max_gas_stroops: int = Field(default=2_000_000, gt=0, description="Maximum total fee of a transaction")
    payout_contract_id: str | None = Field(default=None, description="The payout contract (C...); none: no invokes")
    payout_method_name: str = Field(default="distribute_winnings", pattern=r"^[A-Za-z0-9_]{1,32}$")
    signer_contract_asset: str = Field(default="XLM", description="Asset the payout contract pays in (for caps)")
    signer_allowed_assets: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["XLM", "USDC"])
    signer_tx_caps: dict[str, int] = Field(
        default_factory=lambda: {
            "XLM": 10_000 * _XLM,
            "USDC": 10_000 * _XLM,
            "TON": 1_000 * _TON,
            "USDT": 10_000 * _USDT,
        },
        description="Per-transaction cap per asset, stroops (JSON)",
    )
    signer_daily_caps: dict[str, int] = Field(
        default_factory=lambda: {
            "XLM": 100_000 * _XLM,
            "USDC": 100_000 * _XLM,
            "TON": 10_000 * _TON,
            "USDT": 100_000 * _USDT,
        },
        description="Rolling 24 h cap per asset, stroops (JSON)",
    )
    signer_deny_destinations: Annotated[list[str], NoDecode] = Field(default_factory=list)
    signer_max_validity_s: int = Field(default=3600, gt=0, description="Upper time bound at most this far ahead")
    signer_live_margin_s: int = Field(
        default=TIME_BOUND_MARGIN_S,
        ge=0,
        le=3600,
        description="A signed transaction counts as live until this long after its upper time bound",
    )

    signer_ton_wallet: str | None = Field(
        default=None, description="The TON wallet (v4r2) whose messages this signer signs; unset: no TON"
    )
    signer_ton_subwallet_id: int = Field(default=TON_V4R2_SUBWALLET, ge=0, le=2**32 - 1)
    signer_ton_max_validity_s: int = Field(default=600, gt=0, le=3600, description="valid_until at most this far")
    signer_ton_native_asset: str = Field(default="TON", description="The asset code paid as plain TON")
    signer_ton_jettons: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='Jettons by asset (JSON): {"USDT": {"master": "0:..", "wallet": "<our jetton wallet>"}}',
    )
    signer_ton_max_jetton_attach_nanotons: int = Field(
        default=100_000_000, gt=0, description="TON attached to a jetton transfer for its fees, at most"
    )

    signer_ton_highload_wallet: str | None = Field(
        default=None, description="The TON highload wallet v3 whose batch messages this signer signs; unset: none"
    )
    signer_ton_highload_subwallet_id: int = Field(default=TON_HIGHLOAD_SUBWALLET, ge=0, le=2**32 - 1)
    signer_ton_highload_jettons: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description='The highload wallet\'s jettons by asset (JSON): {"USDT": {"master": "0:..", "wallet": "<its '
        'jetton wallet>"}}',
    )
    signer_ton_highload_max_timeout_s: int = Field(
        default=3600, gt=0, le=2**22 - 1, description="A batch message's timeout (how long it can land) at most"
    )
    signer_ton_highload_clock_skew_s: int = Field(
        default=120, ge=1, le=3600, description="A batch message's created_at at most this far from now"
    )
    signer_ton_highload_max_internal_nanotons: int = Field(
        default=200_000_000, gt=0, description="TON the highload wallet sends itself for its gas, at most"
    )
    signer_ton_highload_max_batch: int = Field(default=254, ge=1, le=254, description="Transfers per message, at most")

    signer_backend: BackendKind = Field(default=BackendKind.EXTERNAL)
    payouts_sign_with_hot_key: bool = Field(default=False, description="Must be true for the hot_key backend")
    payout_hot_signer_secret: SecretStr | None = None
    payout_hot_signer_secret_file: Path | None = None
    signer_pkcs11_module: str | None = Field(default=None, description="The PKCS#11 library (dev: SoftHSM2)")
    signer_pkcs11_token_label: str | None = None
    signer_pkcs11_pin: SecretStr | None = None
    signer_pkcs11_pin_file: Path | None = None
    signer_pkcs11_key_label: str | None = None

    _split_lists = field_validator(
        "signer_channel_accounts", "signer_allowed_assets", "signer_deny_destinations", mode="before"
    )(_split)

    def _check_ton(self, wallet: str | None, jettons: dict[str, dict[str, str]], name: str) -> None:
        """A TON wallet's assets are capped, and each jetton names exactly its master and our jetton wallet."""
        if wallet is None:
            return
        ton_assets = [self.signer_ton_native_asset, *jettons]
        uncapped = [a for a in ton_assets if a not in self.signer_tx_caps or a not in self.signer_daily_caps]
        if uncapped:
            raise ValueError(f"every TON asset needs a per-transaction and a daily cap; missing for {uncapped}")
        for asset, jetton in jettons.items():
            if set(jetton) != {"master", "wallet"}:
                raise ValueError(f"{name}[{asset}] needs exactly `master` and `wallet`")

    @model_validator(mode="after")
    def _consistent(self) -> SignerSettings:
        missing = [
            a for a in self.signer_allowed_assets if a not in self.signer_tx_caps or a not in self.signer_daily_caps
        ]
        if missing:
            raise ValueError(f"every allowed asset needs a per-transaction and a daily cap; missing for {missing}")
        self._check_ton(self.signer_ton_wallet, self.signer_ton_jettons, "SIGNER_TON_JETTONS")
        highload = self.signer_ton_highload_wallet
        self._check_ton(highload, self.signer_ton_highload_jettons, "SIGNER_TON_HIGHLOAD_JETTONS")
        if self.signer_backend is BackendKind.HOT_KEY:
            if not self.payouts_sign_with_hot_key:
                raise ValueError(
                    "SIGNER_BACKEND=hot_key needs PAYOUTS_SIGN_WITH_HOT_KEY=true (controlled environments only)"
                )
            if self.payout_hot_signer_secret is None and self.payout_hot_signer_secret_file is None:
                raise ValueError(
                    "SIGNER_BACKEND=hot_key needs PAYOUT_HOT_SIGNER_SECRET or PAYOUT_HOT_SIGNER_SECRET_FILE"
                )
        if self.signer_backend is BackendKind.PKCS11:
            given = {
                "SIGNER_PKCS11_TOKEN_LABEL": self.signer_pkcs11_token_label is not None,
                "SIGNER_PKCS11_KEY_LABEL": self.signer_pkcs11_key_label is not None,
                "SIGNER_PKCS11_PIN or SIGNER_PKCS11_PIN_FILE": (
                    self.signer_pkcs11_pin is not None or self.signer_pkcs11_pin_file is not None
                ),
                "SIGNER_PKCS11_MODULE": self.signer_pkcs11_module is not None or self.prizeflow_profile is Profile.DEV,
            }
            missing = [env for env, ok in given.items() if not ok]
            if missing:
                raise ValueError(f"SIGNER_BACKEND=pkcs11 needs {', '.join(missing)}")
        return self

    @property
    def pkcs11_module(self) -> str:
        """SIGNER_PKCS11_MODULE; in the dev profile SoftHSM2 when unset."""
        if self.signer_pkcs11_module is not None:
            return self.signer_pkcs11_module
        if self.prizeflow_profile is Profile.DEV:
            return SOFTHSM_MODULE
        raise ValueError("SIGNER_PKCS11_MODULE is not set")

    def hot_secret(self) -> str:
        """The hot key seed, from PAYOUT_HOT_SIGNER_SECRET_FILE or PAYOUT_HOT_SIGNER_SECRET."""
        if self.payout_hot_signer_secret_file is not None:
            return self.payout_hot_signer_secret_file.read_text().strip()
        if self.payout_hot_signer_secret is not None:
            return self.payout_hot_signer_secret.get_secret_value().strip()
        raise ValueError("hot_key backend: set PAYOUT_HOT_SIGNER_SECRET or PAYOUT_HOT_SIGNER_SECRET_FILE")

    def pkcs11_pin(self) -> str:
        if self.signer_pkcs11_pin_file is not None:
            return self.signer_pkcs11_pin_file.read_text().strip()
        if self.signer_pkcs11_pin is not None:
            return self.signer_pkcs11_pin.get_secret_value()
        raise ValueError("pkcs11 backend: set SIGNER_PKCS11_PIN or SIGNER_PKCS11_PIN_FILE")
