"""`build_exchange`: the factory of `type: crypto_exchange` entries."""

from __future__ import annotations

from typing import Any

from prizeflow_payouts.adapters.exchange.options import parse_options
from prizeflow_payouts.adapters.exchange.provider import ExchangeWithdrawalProvider
from prizeflow_payouts.adapters.exchange.store import WithdrawalBook
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def exchange_terms(operator_after_s: float) -> RailTerms:
    return RailTerms(
        cancels=False,  # no unified cancel of a withdrawal
        quotes=True,  # the network fee, before approval
        webhooks=False,  # status by polling fetch_withdrawals
        confirms_later=True,
        # Past this, a withdrawal of unknown outcome is counted as awaiting an operator (it never asks again).
        operator_after_s=operator_after_s,
        statement_fees_inside=True,  # its statement lists gross withdrawals: the network fee inside each
    )


def exchange_rail(provider: ExchangeWithdrawalProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=exchange_terms(float(provider.options.operator_after_s)),
        errors=provider.errors,
        statement=provider,
        settler=provider,  # a person settles a withdrawal of unknown outcome from the exchange's history
        engine=provider,
        database=provider,
        validator=provider,
    )


def build_exchange(
    spec: ProviderSpec, context: ProviderContext, *, exchange: Any | None = None, book: WithdrawalBook | None = None
) -> Rail:
    options, credentials = parse_options(spec, context)
    provider = ExchangeWithdrawalProvider(
        options,
        credentials=credentials,
        exchange=exchange,
        book=book,
        database_url=context.database_url or None,
    )
    return exchange_rail(provider)


__all__ = ["build_exchange", "exchange_rail", "exchange_terms"]
