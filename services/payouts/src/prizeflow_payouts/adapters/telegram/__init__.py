"""The Telegram rail (`type: telegram_if_supported`): prizes in Telegram Stars paid as gifts (docs/adr/0009)."""

from prizeflow_payouts.adapters.telegram.classify import BAD_REQUEST_CODES, TelegramErrors
from prizeflow_payouts.adapters.telegram.factory import build_telegram
from prizeflow_payouts.adapters.telegram.options import TelegramOptions, parse_options
from prizeflow_payouts.adapters.telegram.provider import TelegramGiftProvider

__all__ = [
    "BAD_REQUEST_CODES",
    "TelegramErrors",
    "TelegramGiftProvider",
    "TelegramOptions",
    "build_telegram",
    "parse_options",
]
