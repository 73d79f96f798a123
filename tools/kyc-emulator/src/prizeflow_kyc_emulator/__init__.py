"""A stateful emulator of the identity-verification API subset Prizeflow uses, modelled on Sumsub: applicants (one
per external user id), WebSDK links to a hosted flow, review statuses, webhooks signed with `X-Payload-Digest`, and
fault injection. For tests and the local stack only; it verifies nobody."""

from prizeflow_kyc_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_kyc_emulator.signing import payload_digest, request_signature

__all__ = ["EmulatorSettings", "SettingsError", "payload_digest", "request_signature"]
