"""What one `type: gift_card` provider entry resolves to: its options validated (unknown keys refused), its API
key and webhook keys, and the guards that keep a production key away from anything but the provider's own API
and away from a build-only deployment.

```yaml
- name: giftcards
  type: gift_card
  assets: [USD]
  destination_types: [email]
  secrets: {api_key: GIFTCARD_API_KEY, webhook_key: GIFTCARD_WEBHOOK_KEY}
  options:
    api_base: https://testflight.tremendous.com            # or api_base_env: GIFTCARD_API_URL (/api/v2 appended)
    funding_source_id: balance
    delivery: email                                       # the only one accepted (link is refused)
    products: {USD: [OKMHM2X2OHYV]}                       # the catalogue ids allowed, per asset
```
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import Field, field_validator

from prizeflow_contracts.money import ASSETS, AssetKind
from prizeflow_contracts.providers import DEFAULT_APIS, DestinationType, ProviderType
from prizeflow_payouts.adapters.http_options import HttpRailOptions, validated_http_options
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

PRODUCTION_API: Final = "https://api.tremendous.com"
SANDBOX_API: Final = DEFAULT_APIS[ProviderType.GIFT_CARD]
API_PATH: Final = "/api/v2"  # appended to api_base: the host (a local stack gives its emulator's as GIFTCARD_API_URL)
_PRODUCTION_PREFIX: Final = "PROD_"
_SECRETS: Final = frozenset({"api_key", "webhook_key", "webhook_key_next"})


class Delivery(StrEnum):
    EMAIL = "email"  # the provider emails the card to the destination address
    # The provider answers a redemption link and emails nothing; Prizeflow drops the link (it is the card), so the
    # player would never get it. Refused by `parse_options` until there is a secure way to hand it over.
    LINK = "link"

    @property
    def method(self) -> str:
        return self.value.upper()


class _Options(HttpRailOptions):
    api_base: str = SANDBOX_API
    funding_source_id: str = Field(default="balance", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    delivery: Delivery = Delivery.EMAIL
    products: dict[str, list[str]] = Field(min_length=1)
    recipient_name: str = Field(default="Prizeflow player", min_length=1, max_length=100)

    @field_validator("products")
    @classmethod
    def _products(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for asset, ids in value.items():
            if not ids or any(not isinstance(i, str) or not 0 < len(i) <= 64 or not i.isalnum() for i in ids):
                raise ValueError(f"products.{asset}: a non-empty list of catalogue ids (letters and digits)")
        return value


@dataclass(frozen=True)
class GiftCardOptions:
    name: str
    provider_type: ProviderType
    api_base: str
    funding_source_id: str
    delivery: Delivery
    products: dict[str, tuple[str, ...]]  # our asset code -> catalogue ids (the currency is the asset code)
    recipient_name: str
    timeout_s: float
    assets: tuple[str, ...]


@dataclass(frozen=True)
class GiftCardSecrets:
    api_key: str
    webhook_keys: tuple[str, ...]


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[GiftCardOptions, GiftCardSecrets]:
    """The options and secrets of a gift_card entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    opts = _validated(spec, context, where)
    if opts.delivery is not Delivery.EMAIL:
        raise ProviderConfigError(
            f"{where}: gift_card options.delivery: {opts.delivery.value!r} is not supported (the card would be "
            "paid but never reach the player); use 'email'"
        )
    for dt in spec.destination_types:
        if dt is not DestinationType.EMAIL:
            raise ProviderConfigError(f"{where}: gift_card pays email destinations only, not {dt.value}")
    for code in spec.assets:
        if ASSETS[code].kind is not AssetKind.FIAT:
            raise ProviderConfigError(f"{where}: gift cards are bought in a currency; {code} is not fiat")
        if code not in opts.products:
            raise ProviderConfigError(f"{where}: options.products has no catalogue ids for {code}")
    if extra := sorted(set(opts.products) - set(spec.assets)):
        raise ProviderConfigError(f"{where}: options.products names assets the provider does not pay: {extra}")
    return (
        GiftCardOptions(
            name=spec.name,
            provider_type=spec.type,
            api_base=opts.api_base,
            funding_source_id=opts.funding_source_id,
            delivery=opts.delivery,
            products={a: tuple(ids) for a, ids in opts.products.items()},
            recipient_name=opts.recipient_name,
            timeout_s=opts.timeout_s,
            assets=spec.assets,
        ),
        _secrets(spec, opts, context, where),
    )


def _validated(spec: ProviderSpec, context: ProviderContext, where: str) -> _Options:
    return validated_http_options(_Options, spec, context, where, "gift_card")


def _secrets(spec: ProviderSpec, opts: _Options, context: ProviderContext, where: str) -> GiftCardSecrets:
    if unknown := set(spec.secrets) - _SECRETS:
        raise ProviderConfigError(f"{where}: gift_card knows the secrets {sorted(_SECRETS)}, not {sorted(unknown)}")
    secret = spec.secrets.get("api_key")
    if secret is None:
        raise ProviderConfigError(f"{where}: gift_card needs `secrets: {{api_key: <ENV VAR NAME>}}`")
    key = secret.reveal()
    if key.startswith(_PRODUCTION_PREFIX):
        if opts.api_base != PRODUCTION_API:
            raise ProviderConfigError(f"{where}: a production key ({secret.env}) is only ever sent to {PRODUCTION_API}")
        if not context.live_execution:
            raise ProviderConfigError(
                f"{where}: {secret.env} holds a production key but PAYOUTS_LIVE_EXECUTION is false (build-only)"
            )
    webhook = tuple(spec.secrets[k].reveal() for k in ("webhook_key", "webhook_key_next") if k in spec.secrets)
    if "webhook_key_next" in spec.secrets and "webhook_key" not in spec.secrets:
        raise ProviderConfigError(f"{where}: webhook_key_next is the second key of a rotation: give webhook_key too")
    return GiftCardSecrets(api_key=key, webhook_keys=webhook)


__all__ = [
    "API_PATH",
    "PRODUCTION_API",
    "SANDBOX_API",
    "Delivery",
    "GiftCardOptions",
    "GiftCardSecrets",
    "parse_options",
]
