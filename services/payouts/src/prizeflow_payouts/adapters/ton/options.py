"""The `ton_wallet` providers-file entry, validated: the TON HTTP API, our wallet (v4r2, or a highload wallet v3
with its batching lane), its assets (TON and jettons with their decimals, jetton master and OUR jetton wallet),
timings. Addresses are kept in raw form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec
from prizeflow_ton.addresses import InvalidTonAddressError, canonical
from prizeflow_ton.highload import DEFAULT_HIGHLOAD_SUBWALLET_ID, MAX_ACTIONS
from prizeflow_ton.messages import DEFAULT_SUBWALLET_ID

TONCENTER_MAINNET: Final = "https://toncenter.com"
TONCENTER_TESTNET: Final = "https://testnet.toncenter.com"
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"


class _Asset(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decimals: int = Field(ge=0, le=18)
    jetton_master: str | None = None
    jetton_wallet: str | None = None  # OUR jetton wallet of that master (get_wallet_address(our wallet))
    jetton_master_env: str | None = Field(default=None, pattern=_ENV_NAME)
    jetton_wallet_env: str | None = Field(default=None, pattern=_ENV_NAME)
    attach_nanotons: int = Field(default=50_000_000, gt=0, le=1_000_000_000)  # TON for the jetton wallet's fees


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Literal["mainnet", "testnet"]  # required: never assumed
    api_url: str | None = None
    # The NAME of a variable holding api_url: a local stack or a test gives its TON emulator's address there.
    api_url_env: str | None = Field(default=None, pattern=_ENV_NAME)
    wallet: str | None = None
    # The NAME of a variable holding the wallet address (a local stack derives it from its dev key).
    wallet_env: str | None = Field(default=None, pattern=_ENV_NAME)
    # v4r2 (default: one message per payout) or highload_v3 (batches of up to `batch_size` payouts per message).
    wallet_version: Literal["v4r2", "highload_v3"] = "v4r2"
    subwallet_id: int | None = Field(default=None, ge=0, le=2**32 - 1)  # default: the wallet version's
    # highload_v3 only: the wallet's timeout (set at deployment, every message carries it), the lane's shape.
    highload_timeout_s: int = Field(default=3600, ge=10, le=7 * 86400)
    batch_size: int = Field(default=32, ge=1, le=MAX_ACTIONS)
    max_batches_in_flight: int = Field(default=4, ge=1, le=64)
    batch_linger_s: float = Field(default=1.0, ge=0, le=60)  # a partial batch waits this long for company
    created_at_lag_s: int = Field(default=10, ge=0, le=600)  # created_at this far behind our clock (chain lag)
    internal_nanotons: int = Field(default=50_000_000, gt=0, le=1_000_000_000)  # the wallet's own gas per batch
    public_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # the signer's key, hex; checked
    public_key_env: str | None = Field(default=None, pattern=_ENV_NAME)
    validity_s: int = Field(default=120, ge=10, le=3600)
    expiry_margin_s: int = Field(default=30, ge=5, le=600)  # after valid_until, before "provably not landed"
    max_messages: int = Field(default=5, ge=1, le=100)  # expired messages of one payout before it fails
    poll_s: float = Field(default=1.0, ge=0.05, le=60)
    resign_after_s: float = Field(default=10.0, ge=0.1, le=600)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    assets: Mapping[str, _Asset]


@dataclass(frozen=True, slots=True)
class TonAsset:
    code: str
    decimals: int
    jetton_master: str | None  # raw; None: plain TON
    jetton_wallet: str | None  # raw
    attach_nanotons: int

    @property
    def is_jetton(self) -> bool:
        return self.jetton_master is not None


@dataclass(frozen=True, slots=True)
class TonOptions:
    name: str
    network: str
    api_url: str
    api_key: str | None = field(repr=False)
    wallet: str  # raw
    subwallet_id: int
    public_key: str | None
    validity_s: int
    expiry_margin_s: int
    max_messages: int
    poll_s: float
    resign_after_s: float
    timeout_s: float
    assets: Mapping[str, TonAsset]
    source: str
    wallet_version: str = "v4r2"
    highload_timeout_s: int = 3600
    batch_size: int = 32
    max_batches_in_flight: int = 4
    batch_linger_s: float = 1.0
    created_at_lag_s: int = 10
    internal_nanotons: int = 50_000_000

    @property
    def testnet(self) -> bool:
        return self.network == "testnet"

    @property
    def highload(self) -> bool:
        return self.wallet_version == "highload_v3"


def _raw(value: str, what: str, where: str) -> str:
    try:
        return canonical(value)
    except InvalidTonAddressError as err:
        raise ProviderConfigError(f"{where}: {what}: {err}") from None


def _assets(spec: ProviderSpec, opts: _Options, context: ProviderContext, where: str) -> dict[str, TonAsset]:
    if set(opts.assets) != set(spec.assets):
        raise ProviderConfigError(f"{where}: options.assets must declare exactly the provider's assets {spec.assets}")
    out: dict[str, TonAsset] = {}
    natives = 0
    for code, given in opts.assets.items():
        a = given.model_copy(
            update={
                "jetton_master": _from_env(
                    given.jetton_master, given.jetton_master_env, "jetton_master", context, where
                ),
                "jetton_wallet": _from_env(
                    given.jetton_wallet, given.jetton_wallet_env, "jetton_wallet", context, where
                ),
            }
        )
        if a.decimals != ASSETS[code].scale:
            raise ProviderConfigError(
                f"{where}: {code} has {ASSETS[code].scale} decimals in the asset registry, not {a.decimals}"
            )
        if (a.jetton_master is None) != (a.jetton_wallet is None):
            raise ProviderConfigError(f"{where}: {code}: a jetton names jetton_master and jetton_wallet, TON neither")
        if a.jetton_master is None:
            natives += 1
            if a.decimals != 9:
                raise ProviderConfigError(f"{where}: {code}: plain TON has 9 decimals")
        out[code] = TonAsset(
            code=code,
            decimals=a.decimals,
            jetton_master=_raw(a.jetton_master, f"{code}.jetton_master", where) if a.jetton_master else None,
            jetton_wallet=_raw(a.jetton_wallet, f"{code}.jetton_wallet", where) if a.jetton_wallet else None,
            attach_nanotons=a.attach_nanotons,
        )
    if natives > 1:
        raise ProviderConfigError(f"{where}: only one asset can be plain TON")
    return out


def _api_url(opts: _Options, context: ProviderContext, where: str) -> str:
    if opts.api_url is not None and opts.api_url_env is not None:
        raise ProviderConfigError(f"{where}: give api_url or api_url_env, not both")
    url = opts.api_url
    if opts.api_url_env is not None:
        url = context.env.get(opts.api_url_env)
        if not url:
            raise ProviderConfigError(f"{where}: api_url_env names {opts.api_url_env}, which is not set")
    if url is None:
        url = TONCENTER_TESTNET if opts.network == "testnet" else TONCENTER_MAINNET
    parts = urlsplit(url)
    local = parts.hostname is not None and (parts.hostname in _LOOPBACK or "." not in parts.hostname)
    if not context.live_execution and not local and parts.hostname != urlsplit(TONCENTER_TESTNET).hostname:
        # The declared network is not proof: without live execution only a local API or testnet toncenter.
        raise ProviderConfigError(
            f"{where}: with PAYOUTS_LIVE_EXECUTION off the TON API must be local or {TONCENTER_TESTNET}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ProviderConfigError(f"{where}: the TON API URL must be an http(s) URL without query or fragment")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK and "." in parts.hostname:
        raise ProviderConfigError(f"{where}: the TON API URL must use https outside loopback or a local service name")
    return url.rstrip("/")


def _from_env(value: str | None, env_name: str | None, what: str, context: ProviderContext, where: str) -> str | None:
    if value is not None and env_name is not None:
        raise ProviderConfigError(f"{where}: give {what} or {what}_env, not both")
    if env_name is None:
        return value
    found = context.env.get(env_name)
    if not found:
        raise ProviderConfigError(f"{where}: {what}_env names {env_name}, which is not set")
    return found


_HIGHLOAD_ONLY: Final = frozenset(
    {"highload_timeout_s", "batch_size", "max_batches_in_flight", "batch_linger_s", "created_at_lag_s",
     "internal_nanotons"}
)  # fmt: skip
_V4R2_ONLY: Final = frozenset({"validity_s"})


def _check_version(opts: _Options, where: str) -> None:
    """Options of the other wallet version are refused, not ignored: a setting that does nothing is a mistake."""
    given = opts.model_fields_set
    other = _V4R2_ONLY if opts.wallet_version == "highload_v3" else _HIGHLOAD_ONLY
    if stray := sorted(given & other):
        raise ProviderConfigError(f"{where}: {stray} do not apply to wallet_version {opts.wallet_version}")
    if opts.wallet_version == "highload_v3" and 2 * (opts.created_at_lag_s + opts.expiry_margin_s) >= (
        opts.highload_timeout_s
    ):
        raise ProviderConfigError(
            f"{where}: highload_timeout_s must exceed twice created_at_lag_s + expiry_margin_s (a message must be "
            "able to land for most of its timeout)"
        )


def parse_options(spec: ProviderSpec, context: ProviderContext) -> TonOptions:
    where = f"provider {spec.name!r}"
    try:
        opts = _Options.model_validate(dict(spec.options))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in err.errors()
        )
        raise ProviderConfigError(f"{where}: ton_wallet options: {problems}") from None
    if list(spec.destination_types) != [DestinationType.TON_WALLET]:
        raise ProviderConfigError(f"{where}: destination_types must be [ton_wallet]")
    if unknown := set(spec.secrets) - {"api_key"}:
        raise ProviderConfigError(f"{where}: ton_wallet knows the secret api_key only, not {sorted(unknown)}")
    if opts.network == "mainnet" and not context.live_execution:
        raise ProviderConfigError(f"{where}: network mainnet needs PAYOUTS_LIVE_EXECUTION=true")
    if opts.timeout_s >= context.provider_timeout_s:
        raise ProviderConfigError(f"{where}: timeout_s must be below PAYOUTS_PROVIDER_TIMEOUT_MS")
    api_key = spec.secrets.get("api_key")
    wallet = _from_env(opts.wallet, opts.wallet_env, "wallet", context, where)
    if wallet is None:
        raise ProviderConfigError(f"{where}: ton_wallet needs `wallet` (or `wallet_env`)")
    _check_version(opts, where)
    public_key = _from_env(opts.public_key, opts.public_key_env, "public_key", context, where)
    if public_key is not None and not re.fullmatch(r"[0-9a-f]{64}", public_key):
        raise ProviderConfigError(f"{where}: public_key must be 64 lowercase hex characters (an Ed25519 key)")
    return TonOptions(
        name=spec.name,
        network=opts.network,
        api_url=_api_url(opts, context, where),
        api_key=api_key.reveal() if api_key is not None else None,
        wallet=_raw(wallet, "wallet", where),
        subwallet_id=(
            opts.subwallet_id
            if opts.subwallet_id is not None
            else (DEFAULT_HIGHLOAD_SUBWALLET_ID if opts.wallet_version == "highload_v3" else DEFAULT_SUBWALLET_ID)
        ),
        public_key=public_key,
        validity_s=opts.validity_s,
        expiry_margin_s=opts.expiry_margin_s,
        max_messages=opts.max_messages,
        poll_s=opts.poll_s,
        resign_after_s=opts.resign_after_s,
        timeout_s=opts.timeout_s,
        assets=_assets(spec, opts, context, where),
        source=context.source,
        wallet_version=opts.wallet_version,
        highload_timeout_s=opts.highload_timeout_s,
        batch_size=opts.batch_size,
        max_batches_in_flight=opts.max_batches_in_flight,
        batch_linger_s=opts.batch_linger_s,
        created_at_lag_s=opts.created_at_lag_s,
        internal_nanotons=opts.internal_nanotons,
    )


__all__ = ["TONCENTER_MAINNET", "TONCENTER_TESTNET", "TonAsset", "TonOptions", "parse_options"]
