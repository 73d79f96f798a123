"""A stateful emulator of the gift-card API subset Prizeflow's `gift_card` rail uses, modelled on Tremendous'
REST API v2: orders (idempotent by `external_id`), rewards, the product catalogue, order approvals, signed
webhooks, and fault injection. For tests and the local stack only; it moves no money."""

from prizeflow_giftcard_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_giftcard_emulator.signing import SIGNATURE_HEADER, sign

__all__ = ["SIGNATURE_HEADER", "EmulatorSettings", "SettingsError", "sign"]
