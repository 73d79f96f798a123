"""The webhook signature checked independently (the signed string rebuilt here, the CRC32 from zlib, the signature
verified with `cryptography` against the certificate's public key), the key and certificate from PEM values or files
(generated in the dev profile only), and settings refused naming the variable."""

from __future__ import annotations

import base64
import zlib
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from prizeflow_paypal_emulator.rules import DEFAULT_RULES, Outcome
from prizeflow_paypal_emulator.settings import EmulatorSettings, SettingsError
from prizeflow_paypal_emulator.signing import crc32, generate, load, private_pem

KEY = generate()
BODY = b'{"id":"WH-1","event_type":"PAYMENT.PAYOUTS-ITEM.SUCCEEDED","resource":{"x":"\xc3\xa9"}}'


def verify_independently(cert_pem: bytes, signature: str, message: bytes) -> None:
    """What a receiver does: the certificate's RSA public key, PKCS#1 v1.5 and SHA-256 over the signed string."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())


def test_the_signature_is_rsa_sha256_over_id_time_webhook_id_and_the_unsigned_crc32() -> None:
    signature = KEY.sign("a1b2-c3", "2026-01-01T00:00:00Z", "8PT597110X687430LE", BODY)
    checksum = zlib.crc32(BODY) & 0xFFFFFFFF
    message = f"a1b2-c3|2026-01-01T00:00:00Z|8PT597110X687430LE|{checksum}".encode()
    verify_independently(KEY.cert_pem, signature, message)
    assert crc32(BODY) == checksum
    assert crc32(b"\xff" * 7) == zlib.crc32(b"\xff" * 7) & 0xFFFFFFFF > 2**31  # unsigned, never negative
    for tampered in (BODY + b" ", b""):
        wrong = f"a1b2-c3|2026-01-01T00:00:00Z|8PT597110X687430LE|{zlib.crc32(tampered) & 0xFFFFFFFF}".encode()
        with pytest.raises(InvalidSignature):
            verify_independently(KEY.cert_pem, signature, wrong)
    assert KEY.verify(signature, "a1b2-c3", "2026-01-01T00:00:00Z", "8PT597110X687430LE", BODY)
    assert not KEY.verify(signature, "a1b2-c3", "2026-01-01T00:00:00Z", "OTHERWEBHOOK", BODY)
    assert not KEY.verify("not base64!", "a1b2-c3", "2026-01-01T00:00:00Z", "8PT597110X687430LE", BODY)
    assert not generate().verify(signature, "a1b2-c3", "2026-01-01T00:00:00Z", "8PT597110X687430LE", BODY)


def test_a_key_and_its_certificate_load_and_a_stranger_s_certificate_is_refused() -> None:
    loaded = load(private_pem(KEY), KEY.cert_pem)
    assert loaded.cert_id == KEY.cert_id
    assert loaded.cert_id.startswith("CERT-")
    assert loaded.certificate.signature_hash_algorithm is not None
    with pytest.raises(ValueError, match="not the signing key's"):
        load(private_pem(KEY), generate().cert_pem)
    with pytest.raises(ValueError, match="PEM private key"):
        load(b"nope", KEY.cert_pem)


def env(**extra: str) -> dict[str, str]:
    return {"PAYPAL_EMULATOR_CLIENTS": "app:secret", "PRIZEFLOW_PROFILE": "dev", **extra}


def test_settings_read_the_environment() -> None:
    settings = EmulatorSettings.from_env(
        env(
            PAYPAL_EMULATOR_PORT="18000",
            PAYPAL_EMULATOR_PUBLIC_URL="http://${HOSTNAME_X}:18000/",
            HOSTNAME_X="paypal-api",
            PAYPAL_EMULATOR_WEBHOOK_URL="http://hooks.local/paypal",
            PAYPAL_EMULATOR_WEBHOOK_ID="8PT597110X687430LE",
            PAYPAL_EMULATOR_BALANCE="USD:10.00,JPY:500",
            PAYPAL_EMULATOR_ITEM_FEE="USD:0.30",
            PAYPAL_EMULATOR_RULES='[{"receiver": "*@vip.example", "outcome": "ONHOLD"}]',
        )
    )
    assert settings.clients == {"app": "secret"}
    assert (settings.port, settings.base_url) == (18000, "http://paypal-api:18000")
    assert settings.balances == {"USD": Decimal("10.00"), "JPY": Decimal(500)}
    assert settings.item_fees == {"USD": Decimal("0.30")}
    assert [r.outcome for r in settings.rules] == [Outcome.ONHOLD]
    assert (settings.webhook_url, settings.webhook_id) == ("http://hooks.local/paypal", "8PT597110X687430LE")
    defaults = EmulatorSettings.from_env(env())
    assert (defaults.port, defaults.base_url, defaults.rules) == (12117, "http://127.0.0.1:12117", DEFAULT_RULES)
    assert (defaults.process_ms, defaults.unclaimed_days, defaults.token_ttl_s) == (1000, 30, 32_400)


def test_the_signing_key_comes_from_pem_values_or_files_and_is_generated_in_the_dev_profile_only(
    tmp_path: Path,
) -> None:
    (tmp_path / "key.pem").write_bytes(private_pem(KEY))
    (tmp_path / "cert.pem").write_bytes(KEY.cert_pem)
    production = {"PAYPAL_EMULATOR_CLIENTS": "app:secret", "PRIZEFLOW_PROFILE": "production"}
    from_files = EmulatorSettings.from_env(
        {
            **production,
            "PAYPAL_EMULATOR_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
            "PAYPAL_EMULATOR_SIGNING_CERT_FILE": str(tmp_path / "cert.pem"),
        }
    )
    from_values = EmulatorSettings.from_env(
        {
            **production,
            "PAYPAL_EMULATOR_SIGNING_KEY": private_pem(KEY).decode(),
            "PAYPAL_EMULATOR_SIGNING_CERT": KEY.cert_pem.decode(),
        }
    )
    assert from_files.signing.cert_id == from_values.signing.cert_id == KEY.cert_id
    with pytest.raises(SettingsError, match="PRIZEFLOW_PROFILE=dev"):
        EmulatorSettings.from_env(production)
    generated = EmulatorSettings.from_env(env())
    assert generated.signing.cert_id != KEY.cert_id


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"PAYPAL_EMULATOR_CLIENTS": ""}, "PAYPAL_EMULATOR_CLIENTS"),
        ({"PAYPAL_EMULATOR_CLIENTS": "no-secret"}, "PAYPAL_EMULATOR_CLIENTS"),
        ({"PAYPAL_EMULATOR_WEBHOOK_URL": "http://x/hook"}, "PAYPAL_EMULATOR_WEBHOOK_ID"),
        ({"PAYPAL_EMULATOR_WEBHOOK_URL": "ftp://x", "PAYPAL_EMULATOR_WEBHOOK_ID": "W1"}, "PAYPAL_EMULATOR_WEBHOOK_URL"),
        ({"PAYPAL_EMULATOR_BALANCE": "USD:10"}, "PAYPAL_EMULATOR_BALANCE"),
        ({"PAYPAL_EMULATOR_ITEM_FEE": "XXX:1.00"}, "PAYPAL_EMULATOR_ITEM_FEE"),
        ({"PAYPAL_EMULATOR_RULES": '[{"receiver": "*", "outcome": "LOST"}]'}, "PAYPAL_EMULATOR_RULES"),
        ({"PAYPAL_EMULATOR_PORT": "http"}, "PAYPAL_EMULATOR_PORT"),
        ({"PAYPAL_EMULATOR_ACCOUNT_ID": "short"}, "PAYPAL_EMULATOR_ACCOUNT_ID"),
        ({"PAYPAL_EMULATOR_SIGNING_KEY": "x"}, "PAYPAL_EMULATOR_SIGNING_CERT"),
        ({"PAYPAL_EMULATOR_SIGNING_KEY_FILE": "/nonexistent", "PAYPAL_EMULATOR_SIGNING_CERT": "x"}, "_FILE"),
    ],
)
def test_a_bad_setting_is_refused_naming_it(extra: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        EmulatorSettings.from_env(env(**extra))
