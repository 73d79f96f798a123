"""`build_exchange`: the factory of `type: crypto_exchange` entries."""

from __future__ import annotations

from typing import Any

from prizeflow_contracts.providers import ProviderCapabilities
from prizeflow_payouts.adapters.exchange.options import parse_options
from prizeflow_payouts.adapters.exchange.provider import ExchangeWithdrawalProvider
from prizeflow_payouts.adapters.exchange.store import WithdrawalBook
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def build_exchange(
    spec: ProviderSpec, context: ProviderContext, *, exchange: Any | None = None, book: WithdrawalBook | None = None
) -> tuple[ExchangeWithdrawalProvider, bool]:
    options, credentials = parse_options(spec, context)
    caps = ProviderCapabilities(
        supports_cancel=False,  # no unified cancel of a withdrawal
        supports_quote=True,  # the network fee, before approval
        supports_webhooks=False,  # status by polling fetch_withdrawals
        async_confirmation=True,
        requires_signature=False,  # the exchange holds the keys
        supports_batching=False,
        assets=spec.assets,
        destination_types=spec.destination_types,
    )
    provider = ExchangeWithdrawalProvider(
        options,
        credentials=credentials,
        capabilities=caps,
        exchange=exchange,
        book=book,
        database_url=context.database_url or None,
    )
    return provider, True


__all__ = ["build_exchange"]
