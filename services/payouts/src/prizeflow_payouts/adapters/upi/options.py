"""What one `type: upi` providers-file entry resolves to: its options validated (unknown keys refused), its
RazorpayX key, the operator's per-mode limits (fail closed: a mode without a limit pays nothing), and the guards
that keep a live key away from anything but RazorpayX's own API and away from a build-only deployment.

    - name: upi
      type: upi
      assets: [INR]
      destination_types: [upi]
      secrets: {key_id: UPI_KEY_ID, key_secret: UPI_KEY_SECRET, webhook_secret: UPI_WEBHOOK_SECRET}
      options:
        account_number: "7878780080316316"   # our RazorpayX business account
        limits: {UPI: 10000000, IMPS: 50000000, NEFT: 200000000}   # paise per payout; a mode left out is never used
        queue_if_low_balance: true
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import Field, field_validator

from prizeflow_contracts.providers import DEFAULT_APIS, DestinationType, ProviderType
from prizeflow_contracts.upi import ASSET
from prizeflow_payouts.adapters.http_options import HttpRailOptions, validated_http_options
from prizeflow_payouts.provider_spec import ProviderConfigError, ProviderContext, ProviderSpec

RAZORPAY_API: Final = DEFAULT_APIS[ProviderType.UPI]
_LIVE_PREFIX: Final = "rzp_live_"
_KEY_PREFIXES: Final = ("rzp_test_", _LIVE_PREFIX)
MIN_AMOUNT: Final = 100  # paise: RazorpayX refuses a payout under ₹1


class Mode(StrEnum):
    """A RazorpayX payout mode (case-sensitive there). RTGS is not used: a prize is never that large."""

    UPI = "UPI"  # to a VPA only
    IMPS = "IMPS"  # to a bank account, instant
    NEFT = "NEFT"  # to a bank account, batched


# The network's own ceilings per payout (NPCI: UPI ₹1,00,000; IMPS ₹5,00,000); NEFT has none. An operator's limit
# above one is refused at start-up: the bank would refuse every payout over it.
NETWORK_CAPS: Final[Mapping[Mode, int | None]] = {Mode.UPI: 10_000_000, Mode.IMPS: 50_000_000, Mode.NEFT: None}


class Purpose(StrEnum):
    PAYOUT = "payout"
    CASHBACK = "cashback"
    REFUND = "refund"


class _Options(HttpRailOptions):
    api_base: str = RAZORPAY_API
    account_number: str = Field(pattern=r"^[0-9]{6,20}$")
    limits: dict[Mode, int] = Field(min_length=1)
    queue_if_low_balance: bool = True
    purpose: Purpose = Purpose.PAYOUT
    contact_name: str = Field(default="Prizeflow player", min_length=3, max_length=50, pattern=r"^[A-Za-z0-9 .'-]+$")
    narration: str | None = Field(default="Prizeflow prize", max_length=30, pattern=r"^[A-Za-z0-9 ]+$")
    validate_accounts: bool = True  # fund-account validation before a first payout to a new VPA or account
    # paise: below this balance at RazorpayX, PrizeflowProviderBalanceLow fires (None: no threshold, no alert)
    low_balance_below: int | None = Field(default=None, ge=0, le=10**15)

    @field_validator("limits")
    @classmethod
    def _limits(cls, value: dict[Mode, int]) -> dict[Mode, int]:
        for mode, limit in value.items():
            cap = NETWORK_CAPS[mode]
            if limit < MIN_AMOUNT:
                raise ValueError(f"{mode.value}: a limit is at least {MIN_AMOUNT} paise")
            if cap is not None and limit > cap:
                raise ValueError(f"{mode.value}: {limit} paise is above the network's {cap}")
        return value


@dataclass(frozen=True)
class UpiOptions:
    name: str
    provider_type: ProviderType
    api_base: str
    account_number: str
    limits: Mapping[Mode, int]
    queue_if_low_balance: bool
    purpose: Purpose
    contact_name: str
    narration: str | None
    timeout_s: float
    validate_accounts: bool
    low_balance_below: int | None = None
    assets: tuple[str, ...] = (ASSET,)


@dataclass(frozen=True)
class UpiKeys:
    key_id: str
    key_secret: str
    webhook_secrets: tuple[str, ...]


def parse_options(spec: ProviderSpec, context: ProviderContext) -> tuple[UpiOptions, UpiKeys]:
    """The options and keys of a upi entry; raises `ProviderConfigError` naming what is wrong."""
    where = f"provider {spec.name!r}"
    if spec.assets != (ASSET,):
        raise ProviderConfigError(f"{where}: upi pays INR only (assets: [INR])")
    for dt in spec.destination_types:
        if dt is not DestinationType.UPI:
            raise ProviderConfigError(f"{where}: upi pays upi destinations only, not {dt.value}")
    opts = _validated(spec, context, where)
    keys = _keys(spec, opts, context, where)
    return (
        UpiOptions(
            name=spec.name,
            provider_type=spec.type,
            api_base=opts.api_base,
            account_number=opts.account_number,
            limits=dict(opts.limits),
            queue_if_low_balance=opts.queue_if_low_balance,
            purpose=opts.purpose,
            contact_name=opts.contact_name,
            narration=opts.narration,
            timeout_s=opts.timeout_s,
            validate_accounts=opts.validate_accounts,
            low_balance_below=opts.low_balance_below,
        ),
        keys,
    )


def _validated(spec: ProviderSpec, context: ProviderContext, where: str) -> _Options:
    return validated_http_options(_Options, spec, context, where, "upi")


def _keys(spec: ProviderSpec, opts: _Options, context: ProviderContext, where: str) -> UpiKeys:
    if unknown := set(spec.secrets) - {"key_id", "key_secret", "webhook_secret"}:
        raise ProviderConfigError(
            f"{where}: upi knows the secrets key_id, key_secret and webhook_secret, not {sorted(unknown)}"
        )
    key_id, key_secret = spec.secrets.get("key_id"), spec.secrets.get("key_secret")
    if key_id is None or key_secret is None:
        raise ProviderConfigError(f"{where}: upi needs `secrets: {{key_id: <ENV VAR>, key_secret: <ENV VAR>}}`")
    kid = key_id.reveal()
    if not kid.startswith(_KEY_PREFIXES):
        raise ProviderConfigError(f"{where}: the value of {key_id.env} is not a RazorpayX key id (rzp_test_/rzp_live_)")
    live = kid.startswith(_LIVE_PREFIX)
    if live and opts.api_base != RAZORPAY_API:
        raise ProviderConfigError(f"{where}: a live key ({key_id.env}) is only ever sent to {RAZORPAY_API}")
    if live and not context.live_execution:
        raise ProviderConfigError(
            f"{where}: {key_id.env} holds a live key but PAYOUTS_LIVE_EXECUTION is false (build-only deployment)"
        )
    webhook = spec.secrets.get("webhook_secret")
    return UpiKeys(kid, key_secret.reveal(), (webhook.reveal(),) if webhook is not None else ())


__all__ = [
    "ASSET",
    "MIN_AMOUNT",
    "NETWORK_CAPS",
    "RAZORPAY_API",
    "Mode",
    "Purpose",
    "UpiKeys",
    "UpiOptions",
    "parse_options",
]
