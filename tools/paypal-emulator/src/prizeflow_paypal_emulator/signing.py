"""PayPal's webhook signature (docs: api/rest/webhooks/rest, "verify the signature"): each delivery carries

    PAYPAL-TRANSMISSION-ID    a unique id of this transmission
    PAYPAL-TRANSMISSION-TIME  when it was sent, ISO 8601 (`2016-09-21T22:00:46Z`)
    PAYPAL-TRANSMISSION-SIG   base64 of an RSA signature (PKCS#1 v1.5, SHA-256) of the string
                              `<transmission id>|<transmission time>|<webhook id>|<crc32>`, where <crc32> is the
                              CRC32 of the raw body as an unsigned decimal
    PAYPAL-CERT-URL           where the signing certificate (X.509, PEM) is fetched
    PAYPAL-AUTH-ALGO          SHA256withRSA

A receiver fetches the certificate, checks it, and verifies the signature with its public key over the same string
built from the headers, its own webhook id and the body as received. Kept independent of Prizeflow's own verifier on
purpose (two implementations checked against each other).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

TRANSMISSION_ID_HEADER: Final = "PAYPAL-TRANSMISSION-ID"
TRANSMISSION_TIME_HEADER: Final = "PAYPAL-TRANSMISSION-TIME"
TRANSMISSION_SIG_HEADER: Final = "PAYPAL-TRANSMISSION-SIG"
CERT_URL_HEADER: Final = "PAYPAL-CERT-URL"
AUTH_ALGO_HEADER: Final = "PAYPAL-AUTH-ALGO"
AUTH_ALGO: Final = "SHA256withRSA"
COMMON_NAME: Final = "messageverificationcerts.paypal-emulator.invalid"


def crc32(body: bytes) -> int:
    """The body's CRC32 as PayPal puts it in the signed string: unsigned."""
    return zlib.crc32(body) & 0xFFFFFFFF


def signed_string(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}".encode()


@dataclass(frozen=True)
class SigningKey:
    """The RSA key webhooks are signed with and the certificate a receiver verifies them with."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_id(self) -> str:
        """`CERT-xxxxxxxx-xxxxxxxx-xxxxxxxx` (PayPal's form), from the certificate's SHA-256 fingerprint: the same
        certificate has the same id across restarts."""
        fp = self.certificate.fingerprint(hashes.SHA256()).hex()
        return f"CERT-{fp[:8]}-{fp[8:16]}-{fp[16:24]}"

    def sign(self, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> str:
        """The PAYPAL-TRANSMISSION-SIG value."""
        message = signed_string(transmission_id, transmission_time, webhook_id, body)
        return base64.b64encode(self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()

    def verify(
        self, signature: str, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
    ) -> bool:
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        public = self.certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):  # pragma: no cover - load() accepts RSA certificates only
            return False
        message = signed_string(transmission_id, transmission_time, webhook_id, body)
        try:
            public.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True


def load(key_pem: bytes, cert_pem: bytes) -> SigningKey:
    """A PEM RSA private key (unencrypted, PKCS#1 or PKCS#8) and its certificate; ValueError naming what is wrong."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the signing key is not an unencrypted PEM private key ({err})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA key (PayPal signs SHA256withRSA)")
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as err:
        raise ValueError(f"the signing certificate is not a PEM X.509 certificate ({err})") from None
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or public.public_numbers() != key.public_key().public_numbers():
        raise ValueError("the signing certificate is not the signing key's")
    return SigningKey(key, cert)


def generate(*, now: datetime | None = None, days: int = 365) -> SigningKey:
    """A fresh 2048-bit RSA key and a self-signed certificate for it (the dev profile's)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Prizeflow PayPal emulator"),
        ]
    )
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    serial = int.from_bytes(hashlib.sha256(der).digest()[:16], "big") >> 1  # positive, below 2^127
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(COMMON_NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return SigningKey(key, cert)


def private_pem(key: SigningKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (to hand a generated key to another process in tests)."""
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


__all__ = [
    "AUTH_ALGO",
    "AUTH_ALGO_HEADER",
    "CERT_URL_HEADER",
    "TRANSMISSION_ID_HEADER",
    "TRANSMISSION_SIG_HEADER",
    "TRANSMISSION_TIME_HEADER",
    "SigningKey",
    "crc32",
    "generate",
    "load",
    "private_pem",
    "signed_string",
]
