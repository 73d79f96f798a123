"""What one `type: crypto_exchange` entry resolves to: the ccxt exchange id (configuration, not code), its
credentials (names of environment variables), each asset's currency, network, precision and memo rule, and the
guards that keep credentials away from anything but the exchange and away from a build-only deployment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]  # ccxt ships no type information
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
SECRETS: Final = frozenset({"api_key", "api_secret", "password"})

# What ccxt needs per exchange to stay on the wallet endpoints (no derivatives or margin market loads), and the
# request parameter that carries our client id of a withdrawal where the exchange keeps one (searchable later).
EXCHANGE_DEFAULTS: Final[Mapping[str, Mapping[str, Any]]] = {
    "binance": {
        "ccxt_options": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False},
        "client_id_param": "withdrawOrderId",
    },
}


class MemoRule(StrEnum):
    REQUIRED = "required"  # a shared deposit address told apart by memo/tag (XLM, XRP, most exchange accounts)
    OPTIONAL = "optional"
    FORBIDDEN = "forbidden"


class _Asset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    currency: str = Field(pattern=r"^[A-Z0-9]{2,12}$")  # the exchange's unified currency code
    network: str = Field(pattern=r"^[A-Za-z0-9_\-]{2,32}$")  # ccxt's unified network code (ERC20, XLM, TRC20...)
    precision: int = Field(ge=0, le=18)  # decimal places the exchange withdraws on this network
    memo: MemoRule = MemoRule.FORBIDDEN
    address_pattern: str | None = None  # a regex the address must match (checked before anything is sent)


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(pattern=r"^[a-z0-9]{2,32}$")
    assets: dict[str, _Asset]
    # An origin (scheme://host:port) replacing the exchange's in every API URL ccxt knows (an emulator, a proxy).
    api_base: str | None = None
    api_base_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")
    timeout_s: float = Field(default=8.0, gt=0, le=60)
    client_id_param: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    # False: match a withdrawal of unknown outcome by address, memo, amount and time only (an exchange without one).
    use_client_id: bool = True
    match_window_s: int = Field(default=900, ge=10, le=86_400)  # how long after asking a withdrawal may appear
    clock_skew_s: int = Field(default=120, ge=0, le=3600)
    operator_after_s: int = Field(default=1800, ge=60, le=7 * 86_400)  # unknown this long: an operator is needed
    quote_ttl_s: int = Field(default=60, ge=5, le=3600)
    # The statement (reconciliation): rows per page of the withdrawal history (Binance's most: 1000), and how far
    # before a window the history is read for late reversals (a withdrawal is listed by when it was asked for).
    statement_page_size: int = Field(default=1000, ge=1, le=1000)
    statement_lookback_s: int = Field(default=7 * 86_400, ge=0, le=365 * 86_400)
    ccxt_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ValueError("api_base is an origin: http(s)://host[:port], no path, query or fragment")
        return value.rstrip("/")


@dataclass(frozen=True)
class AssetRoute:
    asset: str
    currency: str
    network: str
    precision: int
    memo: MemoRule
    address_pattern: str | None
    scale: int

    @property
    def step(self) -> int:
        """Minor units in the smallest amount the exchange withdraws (an amount is a whole number of these)."""
        return int(10 ** max(0, self.scale - self.precision))


@dataclass(frozen=True)
class ExchangeOptions:
    name: str
    exchange: str
    api_base: str | None
    timeout_s: float
    client_id_param: str | None
    match_window_s: int
    clock_skew_s: int
    operator_after_s: int
    quote_ttl_s: int
    ccxt_options: Mapping[str, Any]
    routes: Mapping[str, AssetRoute]  # by our asset code
    statement_page_size: int = 1000
    statement_lookback_s: int = 7 * 86_400


@dataclass(frozen=True)
class Credentials:
    api_key: str
    api_secret: str
    password: str | None = None

    def __repr__(self) -> str:
        return "Credentials(***)"


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[ExchangeOptions, Credentials]:
    """The options and credentials of a crypto_exchange entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    opts = _validated(spec, where)
    if opts.exchange not in ccxt_async.exchanges:
        raise ProviderConfigError(f"{where}: ccxt knows no exchange {opts.exchange!r}")
    for dt in spec.destination_types:
        if dt is not DestinationType.CRYPTO_ADDRESS:
            raise ProviderConfigError(f"{where}: crypto_exchange pays crypto_address destinations only, not {dt.value}")
    if set(spec.assets) != set(opts.assets):
        raise ProviderConfigError(
            f"{where}: options.assets must describe exactly the provider's assets {sorted(spec.assets)}"
        )
    routes = {}
    for code, a in opts.assets.items():
        scale = ASSETS[code].scale
        if a.precision > scale:
            raise ProviderConfigError(f"{where}: {code} precision {a.precision} is finer than its scale {scale}")
        routes[code] = AssetRoute(code, a.currency, a.network, a.precision, a.memo, a.address_pattern, scale)
    api_base = _api_base(opts, spec, context, where)
    if opts.timeout_s >= context.provider_timeout_s:
        raise ProviderConfigError(
            f"{where}: timeout_s ({opts.timeout_s}) must be below PAYOUTS_PROVIDER_TIMEOUT_MS "
            f"({context.provider_timeout_s}s): a call the worker gave up on would still be running"
        )
    defaults = EXCHANGE_DEFAULTS.get(opts.exchange, {})
    ccxt_options = {**defaults.get("ccxt_options", {}), **opts.ccxt_options}
    client_id_param = (opts.client_id_param or defaults.get("client_id_param")) if opts.use_client_id else None
    return (
        ExchangeOptions(
            name=spec.name,
            exchange=opts.exchange,
            api_base=api_base,
            timeout_s=opts.timeout_s,
            client_id_param=client_id_param,
            match_window_s=opts.match_window_s,
            clock_skew_s=opts.clock_skew_s,
            operator_after_s=opts.operator_after_s,
            quote_ttl_s=opts.quote_ttl_s,
            ccxt_options=ccxt_options,
            routes=routes,
            statement_page_size=opts.statement_page_size,
            statement_lookback_s=opts.statement_lookback_s,
        ),
        _credentials(spec, where),
    )


def _validated(spec: ProviderSpec, where: str) -> _Options:
    try:
        return _Options.model_validate(dict(spec.options))
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'options'}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in err.errors()
        )
        raise ProviderConfigError(f"{where}: crypto_exchange options: {problems}") from None


def _api_base(opts: _Options, spec: ProviderSpec, context: ProviderContext, where: str) -> str | None:
    base = opts.api_base
    if opts.api_base_env is not None:
        if base is not None:
            raise ProviderConfigError(f"{where}: give api_base or api_base_env, not both")
        value = context.env.get(opts.api_base_env)
        if not value:
            raise ProviderConfigError(f"{where}: api_base_env names {opts.api_base_env}, which is not set")
        try:
            base = _Options._api_base(value)
        except ValueError as err:
            raise ProviderConfigError(f"{where}: {opts.api_base_env}: {err}") from None
    if base is None:
        if not context.live_execution:
            raise ProviderConfigError(
                f"{where}: the real {opts.exchange} API moves real money but PAYOUTS_LIVE_EXECUTION is false "
                "(build-only deployment): give api_base(_env) of an emulator, or enable live execution"
            )
        return None
    parts = urlsplit(base)
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK and "." in (parts.hostname or ""):
        raise ProviderConfigError(f"{where}: api_base must use https outside loopback or a local service name")
    return base


def _credentials(spec: ProviderSpec, where: str) -> Credentials:
    if unknown := set(spec.secrets) - SECRETS:
        raise ProviderConfigError(
            f"{where}: crypto_exchange knows the secrets {sorted(SECRETS)}, not {sorted(unknown)}"
        )
    missing = [s for s in ("api_key", "api_secret") if s not in spec.secrets]
    if missing:
        raise ProviderConfigError(
            f"{where}: crypto_exchange needs `secrets: {{api_key: <ENV VAR>, api_secret: <ENV VAR>}}` "
            f"(missing {missing})"
        )
    password = spec.secrets.get("password")
    return Credentials(
        spec.secrets["api_key"].reveal(),
        spec.secrets["api_secret"].reveal(),
        password.reveal() if password is not None else None,
    )


__all__ = [
    "EXCHANGE_DEFAULTS",
    "SECRETS",
    "AssetRoute",
    "Credentials",
    "ExchangeOptions",
    "MemoRule",
    "parse_options",
]
