"""A stateful emulator of an FX rates provider, shaped like Open Exchange Rates' API (`/api/latest.json`,
`/api/historical/<date>.json`, `/api/currencies.json`): exact decimal rates published on a controllable clock, a
schedule of moves, staleness, faults. For tests and the local stack only."""

from prizeflow_rates_emulator.settings import EmulatorSettings, SettingsError

__all__ = ["EmulatorSettings", "SettingsError"]
