"""The cluster's certificates, as kubeadm lays them out: a cluster CA, a front-proxy CA (the aggregation layer, which
KEDA's metrics server needs), a service-account key pair, and one certificate per component identity.

Written once under `.devstack/cluster/pki/` (private keys 0600) and kept across restarts, so kubeconfigs and the
tokens pods hold stay valid; a certificate whose names no longer match (another node address) is issued again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALID_FOR = dt.timedelta(days=3650)


@dataclass(frozen=True)
class Identity:
    """One certificate: its file stem, subject, and the names a server certificate answers for."""

    stem: str
    common_name: str
    organization: str | None = None
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    ca: str = "ca"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def ensure_ca(directory: Path, stem: str, common_name: str) -> None:
    """A self-signed CA (`<stem>.crt`, `<stem>.key`), made once."""
    crt, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if crt.exists() and key_path.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _current(crt: Path, identity: Identity) -> bool:
    """The certificate on disk names exactly what the identity asks for."""
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    if cert.subject != _name(identity.common_name, identity.organization):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return not identity.dns_names and not identity.ip_addresses
    dns = set(san.get_values_for_type(x509.DNSName))
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns == set(identity.dns_names) and ips == set(identity.ip_addresses)


def issue(directory: Path, identity: Identity) -> None:
    """`<stem>.crt` / `<stem>.key` signed by `<identity.ca>`, for client and server use; kept if still current."""
    crt, key_path = directory / f"{identity.stem}.crt", directory / f"{identity.stem}.key"
    if crt.exists() and key_path.exists() and _current(crt, identity):
        return
    ca_cert = x509.load_pem_x509_certificate((directory / f"{identity.ca}.crt").read_bytes())
    ca_key = _load_key(directory / f"{identity.ca}.key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(identity.common_name, identity.organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in identity.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in identity.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(key_path, key)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_service_account_keys(directory: Path) -> None:
    """The key pair the API server signs service-account tokens with (`sa.key`) and verifies them by (`sa.pub`)."""
    key_path, pub = directory / "sa.key", directory / "sa.pub"
    if key_path.exists() and pub.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(key_path, key)
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def ensure_pki(directory: Path, identities: Sequence[Identity]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ensure_ca(directory, "ca", "prizeflow-cluster-ca")
    ensure_ca(directory, "front-proxy-ca", "prizeflow-front-proxy-ca")
    ensure_service_account_keys(directory)
    for identity in identities:
        issue(directory, identity)


__all__ = ["Identity", "ensure_ca", "ensure_pki", "issue"]
