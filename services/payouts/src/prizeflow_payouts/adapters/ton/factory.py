"""`build_ton_wallet`: the `ton_wallet` rail from its providers-file entry."""

from __future__ import annotations

from typing import Final

from prizeflow_payouts.adapters.ton.options import parse_options
from prizeflow_payouts.adapters.ton.provider import TonWalletProvider
from prizeflow_payouts.application.rail import Rail, RailTerms, StableErrors
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

TERMS: Final = RailTerms(cancels=False, quotes=True, webhooks=False, confirms_later=True)


def ton_rail(provider: TonWalletProvider) -> Rail:
    """v4r2: one message per payout. highload_v3: the driver batches queued payouts (up to batch_size a message),
    so the rail takes a batch (`batch`)."""
    return Rail(
        payouts=provider,
        terms=TERMS,
        errors=StableErrors(provider.name),  # its provider calls write its books; the driver reads the chain
        statement=provider,
        engine=provider,
        passes=provider,
        database=provider,
        signer_sink=provider,
        external=provider,
        validator=provider,
        batch=provider if provider.o.highload else None,
        progress=provider,
    )


def build_ton_wallet(spec: ProviderSpec, context: ProviderContext) -> Rail:
    # No pool of its own: bootstrap hands it the service's (`database`).
    return ton_rail(TonWalletProvider(parse_options(spec, context)))


__all__ = ["TERMS", "build_ton_wallet", "ton_rail"]
