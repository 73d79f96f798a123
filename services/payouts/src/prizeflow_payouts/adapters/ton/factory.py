"""`build_ton_wallet`: the `ton_wallet` provider type from its providers-file entry."""

from __future__ import annotations

from prizeflow_contracts.providers import ProviderCapabilities
from prizeflow_payouts.adapters.ton.options import parse_options
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def build_ton_wallet(spec: ProviderSpec, context: ProviderContext) -> tuple[TonWalletProvider, bool]:
    options = parse_options(spec, context)
    caps = ProviderCapabilities(
        supports_cancel=False,
        supports_quote=True,
        supports_webhooks=False,
        async_confirmation=True,
        requires_signature=True,
        # v4r2: one message per payout. highload_v3: the driver batches queued payouts (up to batch_size a message).
        supports_batching=options.highload,
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    # No pool of its own: bootstrap hands it the service's (`bind_database`).
    return TonWalletProvider(options, capabilities=caps), True


__all__ = ["build_ton_wallet"]
