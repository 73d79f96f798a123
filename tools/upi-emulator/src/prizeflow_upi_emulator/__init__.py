"""A stateful emulator of the RazorpayX Payouts API subset Prizeflow's UPI/IMPS/NEFT rail uses: contacts, fund
accounts (VPA and bank account) and their validation, idempotent payouts through every state on a controllable
clock, the account's balance and statement, signed `payout.*` webhooks, faults and reconciliation discrepancies. For
tests and the local stack only; it moves no money."""

from prizeflow_upi_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_upi_emulator.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "EmulatorSettings", "SettingsError", "sign"]
