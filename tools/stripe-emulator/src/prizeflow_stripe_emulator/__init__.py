"""A stateful emulator of the Stripe API subset Prizeflow uses: accounts, transfers, payouts, checkout sessions,
refunds, disputes, events and signed webhooks, with idempotency keys, admin lifecycle control and fault
injection."""

from prizeflow_stripe_emulator.server import Emulator, create_app
from prizeflow_stripe_emulator.settings import EmulatorSettings, SettingsError

__all__ = ["Emulator", "EmulatorSettings", "SettingsError", "create_app"]
