"""`build_upi`: the factory of `type: upi` entries (RazorpayX Payouts: UPI to a VPA, IMPS / NEFT to a bank
account), registered once as a `Rail` of the parts it has."""

from __future__ import annotations

import httpx

from prizeflow_payouts.adapters.upi.options import parse_options
from prizeflow_payouts.adapters.upi.provider import UpiPayoutProvider
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

UPI_TERMS = RailTerms(
    cancels=True,  # a queued payout (low balance, the partner bank down)
    quotes=True,
    webhooks=True,
    confirms_later=True,  # processing until the bank's word, by webhook or sync
    returns=True,  # processed, then reversed by the bank hours later
    finds_payouts_at_provider=True,  # sync looks the payout up at RazorpayX by its reference
)


def upi_rail(provider: UpiPayoutProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=UPI_TERMS,
        errors=provider.errors,
        statement=provider,
        engine=provider,
        database=provider,  # its fund accounts (`upi_fund_accounts`)
        validator=provider,
        balance=provider,  # its RazorpayX account's balance (`GET /v1/banking_balances`)
    )


def build_upi(
    spec: ProviderSpec, context: ProviderContext, *, transport: httpx.AsyncBaseTransport | None = None
) -> Rail:
    options, keys = parse_options(spec, context)
    return upi_rail(UpiPayoutProvider(options, keys=keys, transport=transport))


__all__ = ["UPI_TERMS", "build_upi", "upi_rail"]
