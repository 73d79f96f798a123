"""A stateful emulator of the PayPal Payouts API subset Prizeflow's PayPal rail uses: OAuth2 client-credentials
tokens, payout batches (idempotent by `PayPal-Request-Id`, a reused `sender_batch_id` refused) whose items move through
every `transaction_status` on a controllable clock, Transaction Search over the account's money movements, webhooks
signed as PayPal signs them (RSA-SHA256 over the transmission id, time, webhook id and the body's CRC32) with the
certificate and the verify-webhook-signature call, faults and reconciliation discrepancies. For tests and the local
stack only; it moves no money."""

from prizeflow_paypal_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_paypal_emulator.signing import AUTH_ALGO, SigningKey, crc32, signed_string

__all__ = ["AUTH_ALGO", "EmulatorSettings", "SettingsError", "SigningKey", "crc32", "signed_string"]
