"""An emulator of the Binance wallet REST subset that ccxt's unified withdrawal calls use (tests and local runs)."""

from prizeflow_exchange_emulator.server import Emulator, create_app
from prizeflow_exchange_emulator.settings import EmulatorSettings, SettingsError

__all__ = ["Emulator", "EmulatorSettings", "SettingsError", "create_app"]
