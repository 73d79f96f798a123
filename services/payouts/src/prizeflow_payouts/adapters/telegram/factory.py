"""`build_telegram`: the factory of `type: telegram_if_supported` entries (docs/adr/0009)."""

from __future__ import annotations

from prizeflow_payouts.adapters.telegram.options import parse_options
from prizeflow_payouts.adapters.telegram.provider import TelegramGiftProvider
from prizeflow_payouts.provider_spec import ProviderContext, ProviderSpec


def build_telegram(spec: ProviderSpec, context: ProviderContext) -> tuple[TelegramGiftProvider, bool]:
    options, token = parse_options(spec, context)
    # Polled: a gift Telegram confirmed, or of unknown outcome, is settled from the bot's Star transactions.
    return TelegramGiftProvider(options, token=token), True


__all__ = ["build_telegram"]
