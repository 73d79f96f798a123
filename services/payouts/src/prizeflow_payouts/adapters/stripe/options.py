"""What one Stripe provider entry (`type: stripe`, or `type: fiat_provider` with `options.rail: stripe`) resolves
to: its options validated (unknown keys refused), its API key, and the guards that keep a live key away from
anything but Stripe's own API and away from a build-only deployment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import Field

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DEFAULT_APIS, DestinationType, ProviderType
from prizeflow_payouts.adapters.http_options import HttpRailOptions, validated_http_options
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

STRIPE_API: Final = DEFAULT_APIS[ProviderType.STRIPE]
RAIL: Final = "stripe"
# Keys that move real money. Test keys (`sk_test_`, `rk_test_`) move none, whichever host they reach.
_LIVE_PREFIXES: Final = ("sk_live_", "rk_live_")
_KEY_PREFIXES: Final = ("sk_test_", "rk_test_", *_LIVE_PREFIXES)
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class StripeMode(StrEnum):
    TRANSFER = "transfer"  # the transfer to the connected account is the payout: paid when it is created
    TRANSFER_AND_PAYOUT = "transfer_and_payout"  # then a payout of the connected account: paid when it is paid


class _Options(HttpRailOptions):
    rail: str | None = None  # only with `type: fiat_provider`; checked by the factory
    mode: StripeMode = StripeMode.TRANSFER
    api_base: str = STRIPE_API
    max_network_retries: int = Field(default=2, ge=0, le=5)
    statement_descriptor: str | None = Field(default=None, min_length=1, max_length=22, pattern=r"^[A-Za-z0-9 .\-]+$")


@dataclass(frozen=True)
class StripeOptions:
    name: str
    provider_type: ProviderType
    mode: StripeMode
    api_base: str
    timeout_s: float
    max_network_retries: int
    statement_descriptor: str | None
    assets: tuple[str, ...]
    currencies: dict[str, str]  # our asset code -> Stripe's currency code


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[StripeOptions, str]:
    """The options and the API key of a Stripe entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    opts = _validated(spec, context, where)
    key = _api_key(spec, opts, context, where)
    for dt in spec.destination_types:
        if dt is not DestinationType.STRIPE_ACCOUNT:
            raise ProviderConfigError(f"{where}: stripe pays stripe_account destinations only, not {dt.value}")
    currencies = {}
    for code in spec.assets:
        currency = ASSETS[code].provider_codes.get(RAIL)
        if currency is None:
            raise ProviderConfigError(f"{where}: asset {code} has no Stripe currency (prizeflow_contracts.money)")
        currencies[code] = currency
    return (
        StripeOptions(
            name=spec.name,
            provider_type=spec.type,
            mode=opts.mode,
            api_base=opts.api_base,
            timeout_s=opts.timeout_s,
            max_network_retries=opts.max_network_retries,
            statement_descriptor=opts.statement_descriptor,
            assets=spec.assets,
            currencies=currencies,
        ),
        key,
    )


def _validated(spec: ProviderSpec, context: ProviderContext, where: str) -> _Options:
    opts = validated_http_options(_Options, spec, context, where, "stripe")
    if spec.type is ProviderType.FIAT_PROVIDER and opts.rail != RAIL:
        raise ProviderConfigError(f"{where}: fiat_provider rail {opts.rail!r} is not implemented (implemented: stripe)")
    if spec.type is ProviderType.STRIPE and opts.rail not in (None, RAIL):
        raise ProviderConfigError(f"{where}: a stripe provider's rail can only be stripe, not {opts.rail!r}")
    if opts.statement_descriptor is not None and opts.mode is not StripeMode.TRANSFER_AND_PAYOUT:
        raise ProviderConfigError(f"{where}: statement_descriptor applies to payouts (mode transfer_and_payout) only")
    return opts


def _api_key(spec: ProviderSpec, opts: _Options, context: ProviderContext, where: str) -> str:
    if unknown := set(spec.secrets) - {"api_key", "webhook_secret"}:
        raise ProviderConfigError(
            f"{where}: stripe knows the secrets api_key and webhook_secret, not {sorted(unknown)}"
        )
    secret = spec.secrets.get("api_key")
    if secret is None:
        raise ProviderConfigError(f"{where}: stripe needs `secrets: {{api_key: <ENV VAR NAME>}}`")
    key = secret.reveal()
    if not key.startswith(_KEY_PREFIXES):
        raise ProviderConfigError(
            f"{where}: the value of {secret.env} is not a Stripe secret or restricted key (sk_/rk_, test or live)"
        )
    live = key.startswith(_LIVE_PREFIXES)
    if live and opts.api_base != STRIPE_API:
        raise ProviderConfigError(f"{where}: a live key ({secret.env}) is only ever sent to {STRIPE_API}")
    if live and not context.live_execution:
        raise ProviderConfigError(
            f"{where}: {secret.env} holds a live key but PAYOUTS_LIVE_EXECUTION is false (build-only deployment)"
        )
    return key


__all__ = ["RAIL", "STRIPE_API", "StripeMode", "StripeOptions", "parse_options"]
