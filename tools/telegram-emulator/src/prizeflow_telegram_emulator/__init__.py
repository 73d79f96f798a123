"""An emulator of the Telegram Bot API methods Prizeflow's `telegram_if_supported` rail uses (docs/adr/0009)."""

from prizeflow_telegram_emulator.server import Emulator, create_app
from prizeflow_telegram_emulator.settings import EmulatorSettings

__all__ = ["Emulator", "EmulatorSettings", "create_app"]
