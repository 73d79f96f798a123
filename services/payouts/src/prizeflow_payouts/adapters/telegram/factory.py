"""`build_telegram`: the factory of `type: telegram_if_supported` entries (docs/adr/0009)."""

from __future__ import annotations

from typing import Final

from prizeflow_payouts.adapters.telegram.options import parse_options
from prizeflow_payouts.adapters.telegram.provider import TelegramGiftProvider
from prizeflow_payouts.application.rail import Rail, RailTerms
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec

TERMS: Final = RailTerms(
    cancels=False,  # a sent gift cannot be taken back
    quotes=False,  # the player receives a gift, not Stars: there is no receive amount to quote
    webhooks=False,  # Telegram reports nothing about a bot's own gifts
    # Paid once the gift is matched to the bot's Star transaction: at once, or by a later sync when Telegram's
    # answer was lost or its transactions lag behind it (`submitted` meanwhile). Polled for that.
    confirms_later=True,
    returns=False,
)


def telegram_rail(provider: TelegramGiftProvider) -> Rail:
    return Rail(
        payouts=provider,
        terms=TERMS,
        errors=provider.errors,
        statement=provider,
        engine=provider,
        database=provider,
        validator=provider,
        amounts=provider,  # the prices of its gifts
    )


def build_telegram(spec: ProviderSpec, context: ProviderContext) -> Rail:
    options, token = parse_options(spec, context)
    return telegram_rail(TelegramGiftProvider(options, token=token))


__all__ = ["TERMS", "build_telegram", "telegram_rail"]
