"""The local stack's settings for this emulator and the rail that talks to it (the devstack calls `local_env`, named
in this package's `[tool.prizeflow.service]`): a random REST app (client id and secret), the webhook's id, and a
fresh RSA key and self-signed certificate the emulator signs its `PAYMENT.PAYOUTS-ITEM.*` events with, posted to the
ingress's `paypal` provider. Payouts and the ingress pin that certificate (PAYPAL_WEBHOOK_CERT); both find the
emulator as PAYPAL_API_URL (service `paypal-api`)."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import serialization

from prizeflow_paypal_emulator.signing import generate


def local_env() -> dict[str, str]:
    signing = generate(days=3650)
    cert_pem = signing.cert_pem.decode()
    key_pem = signing.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    client_id, secret = "AZdev" + secrets.token_hex(20), secrets.token_hex(24)
    webhook_id = "WH" + secrets.token_hex(11).upper()
    return {
        "PAYPAL_CLIENT_ID": client_id,
        "PAYPAL_CLIENT_SECRET": secret,
        "PAYPAL_WEBHOOK_ID": webhook_id,
        "PAYPAL_WEBHOOK_CERT": cert_pem,
        "PAYPAL_EMULATOR_CLIENTS": f"{client_id}:{secret}",
        "PAYPAL_EMULATOR_SIGNING_KEY": key_pem,
        "PAYPAL_EMULATOR_SIGNING_CERT": cert_pem,
        "PAYPAL_EMULATOR_WEBHOOK_URL": "${WEBHOOKS_URL}/providers/paypal/events",
        "PAYPAL_EMULATOR_WEBHOOK_ID": webhook_id,
        "PAYPAL_EMULATOR_WEBHOOK_RETRY_BASE_MS": "200",
        "PAYPAL_EMULATOR_PROCESS_MS": "1500",
    }


__all__ = ["local_env"]
