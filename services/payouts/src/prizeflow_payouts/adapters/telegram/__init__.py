"""The Telegram rail (`type: telegram_if_supported`): prizes in Telegram Stars paid as gifts (docs/adr/0009)."""

from typing import Final

from prizeflow_contracts.providers import ProviderType
from prizeflow_payouts.adapters.telegram.classify import BAD_REQUEST_CODES, TelegramErrors
from prizeflow_payouts.adapters.telegram.factory import build_telegram
from prizeflow_payouts.adapters.telegram.options import TelegramOptions, parse_options
from prizeflow_payouts.adapters.telegram.provider import TelegramGiftProvider

# The provider types this package implements (the bootstrap finds every adapter package's `RAILS`).
RAILS: Final = {ProviderType.TELEGRAM_IF_SUPPORTED: build_telegram}

__all__ = [
    "BAD_REQUEST_CODES",
    "RAILS",
    "TelegramErrors",
    "TelegramGiftProvider",
    "TelegramOptions",
    "build_telegram",
    "parse_options",
]
