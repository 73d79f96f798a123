"""What one `type: paypal` providers-file entry resolves to: its options validated (unknown keys refused), its REST
app's credentials, the webhook's pins, and the guard that keeps PayPal's live API off a build-only deployment.

    - name: paypal
      type: paypal
      assets: [USD]
      destination_types: [paypal]
      secrets: {client_id: PAYPAL_CLIENT_ID, client_secret: PAYPAL_CLIENT_SECRET,
                webhook_id: PAYPAL_WEBHOOK_ID, webhook_cert: PAYPAL_WEBHOOK_CERT}   # the webhook's, as the ingress
      options:
        api_base: https://api-m.paypal.com   # live (only with PAYOUTS_LIVE_EXECUTION=true); the sandbox by default
        email_subject: "You have a prize from Prizeflow"
        note: "Your prize"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field

from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.providers import DestinationType, ProviderType
from prizeflow_contracts.rails.paypal import CERT_HOSTS, pinned
from prizeflow_payouts.adapters.http_options import HttpRailOptions, validated_http_options
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

LIVE_API: Final = "https://api-m.paypal.com"
LIVE_HOSTS: Final = frozenset({"api-m.paypal.com", "api.paypal.com"})  # real money: PAYOUTS_LIVE_EXECUTION only
SANDBOX_API: Final = "https://api-m.sandbox.paypal.com"
# What PayPal Payouts pays in (the currencies a business account can send); checked against our asset table too.
CURRENCIES: Final = frozenset({"USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF", "SEK", "NOK", "DKK", "PLN", "BRL"})


class _Options(HttpRailOptions):
    api_base: str = SANDBOX_API
    email_subject: str = Field(default="You have a prize payout", min_length=1, max_length=255)
    note: str | None = Field(default="Your prize", min_length=1, max_length=4000)
    # How late Transaction Search lists a movement (PayPal: up to three hours); reconciliation waits that long.
    statement_lag_s: float = Field(default=3 * 3600, ge=0, le=24 * 3600)


@dataclass(frozen=True)
class PayPalOptions:
    name: str
    provider_type: ProviderType
    api_base: str
    assets: tuple[str, ...]
    email_subject: str
    note: str | None
    timeout_s: float
    statement_lag_s: float = 3 * 3600


@dataclass(frozen=True)
class PayPalKeys:
    client_id: str
    client_secret: str
    # What the webhook's signature is checked under (`prizeflow_contracts.rails.paypal.pinned`): its id, the pinned
    # certificate (PEM), and where certificate URLs may point when not PayPal's hosts. Empty: no webhooks read here.
    webhook: tuple[str, ...] = ()


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[PayPalOptions, PayPalKeys]:
    """The options and credentials of a paypal entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    for asset in spec.assets:
        if asset not in CURRENCIES or asset not in ASSETS:
            raise ProviderConfigError(f"{where}: paypal pays {sorted(CURRENCIES)}, not {asset}")
    for dt in spec.destination_types:
        if dt is not DestinationType.PAYPAL:
            raise ProviderConfigError(f"{where}: paypal pays paypal destinations only, not {dt.value}")
    opts = validated_http_options(_Options, spec, context, where, "paypal")
    host = urlsplit(opts.api_base).hostname
    if host in LIVE_HOSTS and not opts.api_base.startswith("https://"):
        raise ProviderConfigError(f"{where}: PayPal's live API is only ever called over https")
    if host in LIVE_HOSTS and not context.live_execution:
        raise ProviderConfigError(
            f"{where}: {opts.api_base} is PayPal's live API but PAYOUTS_LIVE_EXECUTION is false (build-only deployment)"
        )
    options = PayPalOptions(
        name=spec.name,
        provider_type=spec.type,
        api_base=opts.api_base,
        assets=tuple(spec.assets),
        email_subject=opts.email_subject,
        note=opts.note,
        timeout_s=opts.timeout_s,
        statement_lag_s=opts.statement_lag_s,
    )
    return options, _keys(spec, opts, where)


def _keys(spec: ProviderSpec, opts: _Options, where: str) -> PayPalKeys:
    known = {"client_id", "client_secret", "webhook_id", "webhook_cert"}
    if unknown := set(spec.secrets) - known:
        raise ProviderConfigError(f"{where}: paypal knows the secrets {sorted(known)}, not {sorted(unknown)}")
    client_id, client_secret = spec.secrets.get("client_id"), spec.secrets.get("client_secret")
    if client_id is None or client_secret is None:
        raise ProviderConfigError(
            f"{where}: paypal needs `secrets: {{client_id: <ENV VAR>, client_secret: <ENV VAR>}}`"
        )
    webhook = tuple(spec.secrets[k].reveal() for k in ("webhook_id", "webhook_cert") if k in spec.secrets)
    if len(webhook) == 1:
        raise ProviderConfigError(f"{where}: paypal's webhook_id and webhook_cert go together")
    # Certificate URLs point at PayPal's hosts (`CERT_HOSTS`), or at the API the rail is given when it is not PayPal's
    # (an emulator's): its origin is pinned beside the certificate and the webhook id.
    parts = urlsplit(opts.api_base)
    own = () if parts.hostname in CERT_HOSTS else (f"{parts.scheme}://{parts.netloc}",)
    pins = (*webhook, *own) if webhook else ()
    if pins:
        try:
            pinned(pins)
        except ValueError as err:
            raise ProviderConfigError(f"{where}: paypal webhook: {err}") from None
    return PayPalKeys(client_id.reveal(), client_secret.reveal(), pins)


__all__ = ["LIVE_API", "SANDBOX_API", "PayPalKeys", "PayPalOptions", "parse_options"]
