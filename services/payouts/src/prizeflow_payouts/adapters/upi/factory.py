"""`build_upi`: the factory of `type: upi` entries (RazorpayX Payouts: UPI to a VPA, IMPS / NEFT to a bank
account)."""

from __future__ import annotations

import httpx

from prizeflow_contracts.providers import ProviderCapabilities
from prizeflow_payouts.adapters.upi.options import parse_options
from prizeflow_payouts.adapters.upi.provider import UpiPayoutProvider
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def build_upi(
    spec: ProviderSpec, context: ProviderContext, *, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[UpiPayoutProvider, bool]:
    options, keys = parse_options(spec, context)
    caps = ProviderCapabilities(
        supports_cancel=True,  # a queued payout (low balance, the partner bank down)
        supports_quote=True,
        supports_webhooks=True,
        async_confirmation=True,  # processing until the bank's word, by webhook or sync
        requires_signature=False,
        supports_batching=False,
        supports_returns=True,  # processed, then reversed by the bank hours later
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    return UpiPayoutProvider(options, keys=keys, capabilities=caps, transport=transport), True


__all__ = ["build_upi"]
