"""The rehearsal's simulated internet: the public services the platform calls, at a public address, under their public
names, over TLS.

- An address outside every private range (198.18.0.1, RFC 2544's benchmarking block, on a bridge of the node's):
  the bundle's egress proxy may only reach public addresses on 443 (its NetworkPolicy excludes 10/8, 172.16/12,
  192.168/16, ...), so the internet must be where the proxy's policy lets it go, and nothing else's.
- `edge`: nginx on the node's network at that address, terminating TLS for each public name with a certificate of the
  rehearsal's own CA (the platform trusts it through components/private-ca), in front of the emulators: the identity
  provider (dev-idp), the Stellar Soroban RPC, the sanctions lists (OFAC's Sanctions List Service answering its
  exports with a 302 to its S3 bucket in another host, as the real one does), the backups' object store (versitygw,
  an S3 server on a directory).
- CoreDNS answers each public name with that address (its `hosts` file), for the proxy that resolves them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from prizeflow_devstack.cluster.kube import Kube
from prizeflow_runtime.dev_identity import JWKS_FILE, KEY_FILE, DevIdentity

NAMESPACE = "internet"
ADDRESS = "198.18.0.1"
IDENTITY = "id.rehearsal.internal"
SOROBAN = "soroban.rehearsal.internal"
OBJECTS = "objects.rehearsal.internal"
OFAC = "sanctionslistservice.ofac.treas.gov"
OFAC_BUCKET = "wc2h-sls-prod-public-published.s3.us-gov-west-1.amazonaws.com"
UN = "scsanctions.un.org"
STRIPE = "api.stripe.com"
RAZORPAY = "api.razorpay.com"
NAMES = (IDENTITY, SOROBAN, OBJECTS, OFAC, OFAC_BUCKET, UN, STRIPE, RAZORPAY)
UPI_KEY = ("rzp_test_rehearsal", "rehearsal-upi-secret")  # what the site's store gives UPI_KEY_ID, UPI_KEY_SECRET
STRIPE_KEY = "sk_test_rehearsal0000000000000000"  # what the site's store gives every STRIPE_API_KEY
BUCKET = "prizeflow-backups"
STELLAR_MAINNET = "Public Global Stellar Network ; September 2015"


@dataclass(frozen=True)
class Internet:
    ca_pem: bytes  # the rehearsal's CA: what the site adds to its bundle
    identity: DevIdentity  # the identity provider's key: the tests mint tokens with it
    s3_access_key: str
    s3_secret_key: str

    @property
    def issuer(self) -> str:
        return f"https://{IDENTITY}/"


def _ca() -> tuple[bytes, bytes]:
    """The rehearsal's public CA (certificate, key), made once per run: the site's bundle trusts it."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Prizeflow rehearsal public CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return cert.public_bytes(pem), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _edge_certificate(ca_pem: bytes, ca_key_pem: bytes) -> tuple[bytes, bytes]:
    """One certificate for every public name the edge serves, signed by the CA (issued again on every deploy, so a
    name added to NAMES is served)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, IDENTITY)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in NAMES]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return cert.public_bytes(pem), key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _nginx_conf() -> str:
    """One server per public name; OFAC's exports redirect to its bucket's host, as the Sanctions List Service does."""
    upstream = "http://{}.internet.svc.cluster.local:8080"
    servers = {
        IDENTITY: f"location / {{ proxy_pass {upstream.format('dev-idp')}; }}",
        SOROBAN: f"location / {{ proxy_pass {upstream.format('soroban-rpc')}; }}",
        OBJECTS: (
            "client_max_body_size 0; proxy_request_buffering off; "
            "location / { proxy_pass http://versitygw.internet.svc.cluster.local:7070; }"
        ),
        OFAC: (
            "location = /api/PublicationPreview/exports/SDN.XML "
            f"{{ return 302 https://{OFAC_BUCKET}/sdn/SDN.XML?X-Amz-Expires=60; }} "
            "location = /api/PublicationPreview/exports/CONSOLIDATED.XML "
            f"{{ return 302 https://{OFAC_BUCKET}/consolidated/CONSOLIDATED.XML?X-Amz-Expires=60; }}"
        ),
        OFAC_BUCKET: (
            f"location = /sdn/SDN.XML {{ proxy_pass {upstream.format('sanctions-lists')}/ofac/downloads/sdn.xml; }} "
            "location = /consolidated/CONSOLIDATED.XML "
            f"{{ proxy_pass {upstream.format('sanctions-lists')}/ofac/downloads/consolidated/consolidated.xml; }}"
        ),
        UN: f"location / {{ proxy_pass {upstream.format('sanctions-lists')}/un/; }}",
        STRIPE: f"location / {{ proxy_pass {upstream.format('stripe-api')}; }}",
        RAZORPAY: f"location / {{ proxy_pass {upstream.format('upi-api')}; }}",
    }
    blocks = "\n".join(
        f"  server {{ listen {ADDRESS}:443 ssl; server_name {name}; "
        "ssl_certificate /etc/edge/tls.crt; ssl_certificate_key /etc/edge/tls.key; "
        f"proxy_set_header Host $host; {body} }}"
        for name, body in servers.items()
    )
    return (
        textwrap.dedent(
            """\
        worker_processes 1;
        pid /tmp/nginx.pid;
        error_log stderr warn;
        events { worker_connections 256; }
        http {
          access_log /dev/stdout;
          client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy; fastcgi_temp_path /tmp/fastcgi;
          uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
          proxy_http_version 1.1;
          resolver 10.96.0.10 valid=10s;
          server_names_hash_bucket_size 128;
        """
        )
        + blocks
        + "\n}\n"
    )


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _deployment(name: str, image: str, env: dict[str, str], port: int, **extra: Any) -> list[dict[str, Any]]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"containerPort": port}],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
        **extra.pop("container", {}),
    }
    labels = {"app": name}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container], **extra}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": labels, "ports": [{"port": port, "targetPort": port}]},
        },
    ]


def deploy(kube: Kube, refs: dict[str, str], *, source_account: str, workdir: Path) -> Internet:
    """Everything above, applied and ready; returns what the site and the tests need of it."""
    kept = workdir / "internet-ca.json"
    if not kept.exists():  # kept: the site's bundle trusts this CA from the first deploy on
        kept.write_text(json.dumps([part.decode() for part in _ca()]))
    ca, ca_key = (part.encode() for part in json.loads(kept.read_text()))
    cert, key = _edge_certificate(ca, ca_key)
    identity = DevIdentity.ensure(workdir / "identity")
    assert identity.directory is not None
    access, secret = "rehearsal-backups", base64.b32encode(ca_key[-20:]).decode().lower()
    accounts = json.dumps({source_account: {"XLM": "100000000", "USDC": "100000000"}})
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "edge", "namespace": NAMESPACE},
            "data": {"tls.crt": _b64(cert), "tls.key": _b64(key), "nginx.conf": _b64(_nginx_conf())},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "identity", "namespace": NAMESPACE},
            "data": {
                JWKS_FILE: _b64((identity.directory / JWKS_FILE).read_bytes()),
                KEY_FILE: _b64((identity.directory / KEY_FILE).read_bytes()),
            },
        },
        *_deployment(
            "edge",
            refs["edge"],
            {},
            443,
            hostNetwork=True,
            dnsPolicy="ClusterFirstWithHostNet",
            container={
                "command": ["nginx", "-g", "daemon off;", "-c", "/etc/edge/nginx.conf"],
                "securityContext": {"runAsUser": 0},
                "readinessProbe": {"tcpSocket": {"host": ADDRESS, "port": 443}, "periodSeconds": 2},
                "volumeMounts": [{"name": "edge", "mountPath": "/etc/edge", "readOnly": True}],
            },
            volumes=[{"name": "edge", "secret": {"secretName": "edge"}}],
        ),
        *_deployment(
            "dev-idp",
            refs["dev-idp"],
            {
                "PRIZEFLOW_PROFILE": "dev",
                "JWT_JWKS_URL": f"file:///etc/identity/{JWKS_FILE}",
                "JWT_ISSUER": f"https://{IDENTITY}/",
                "DEV_IDP_HOST": "0.0.0.0",
                "DEV_IDP_PORT": "8080",
                "DEV_IDP_URL": f"https://{IDENTITY}",
                "CONSOLE_URL": "https://console.rehearsal.internal",
            },
            8080,
            container={"volumeMounts": [{"name": "identity", "mountPath": "/etc/identity", "readOnly": True}]},
            volumes=[{"name": "identity", "secret": {"secretName": "identity"}}],
        ),
        *_deployment(
            "soroban-rpc",
            refs["soroban-rpc"],
            {
                "SOROBAN_RPC_HOST": "0.0.0.0",
                "SOROBAN_RPC_PORT": "8080",
                "SOROBAN_EMULATOR_LEDGER_MS": "1000",
                "STELLAR_NETWORK_PASSPHRASE": STELLAR_MAINNET,
                "SOROBAN_EMULATOR_ACCOUNTS": accounts,
            },
            8080,
        ),
        *_deployment(
            "sanctions-lists",
            refs["sanctions-lists"],
            {"SANCTIONS_EMULATOR_HOST": "0.0.0.0", "SANCTIONS_EMULATOR_PORT": "8080"},
            8080,
        ),
        *_deployment(
            "stripe-api",
            refs["stripe-api"],
            {
                "STRIPE_EMULATOR_HOST": "0.0.0.0",
                "STRIPE_EMULATOR_PORT": "8080",
                "STRIPE_EMULATOR_API_KEYS": STRIPE_KEY,
                "STRIPE_EMULATOR_PUBLIC_URL": f"https://{STRIPE}",
            },
            8080,
        ),
        *_deployment(
            "upi-api",
            refs["upi-api"],
            {
                "UPI_EMULATOR_HOST": "0.0.0.0",
                "UPI_EMULATOR_PORT": "8080",
                "UPI_EMULATOR_KEYS": ":".join(UPI_KEY),
            },
            8080,
        ),
        *_deployment(
            "versitygw",
            refs["versitygw"],
            {"ROOT_ACCESS_KEY_ID": access, "ROOT_SECRET_ACCESS_KEY": secret},
            7070,
            container={
                "args": ["--port", ":7070", "posix", "/data"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            },
            initContainers=[
                {
                    "name": "bucket",
                    "image": refs["edge"],
                    "command": ["mkdir", "-p", f"/data/{BUCKET}"],
                    "securityContext": {"runAsUser": 65532},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            securityContext={"fsGroup": 65532},
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
    ]
    kube.apply(docs)
    for name in ("edge", "dev-idp", "soroban-rpc", "sanctions-lists", "stripe-api", "upi-api", "versitygw"):
        kube.wait_rollout(NAMESPACE, f"deployment/{name}", 300)
    hosts = "".join(f"{ADDRESS} {name}\n" for name in NAMES)
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "coredns-hosts", "namespace": "kube-system"},
                "data": {"hosts": hosts},
            }
        ]
    )
    return Internet(ca_pem=ca, identity=identity, s3_access_key=access, s3_secret_key=secret)


__all__ = [
    "ADDRESS",
    "BUCKET",
    "IDENTITY",
    "NAMESPACE",
    "OBJECTS",
    "SOROBAN",
    "STRIPE_KEY",
    "UPI_KEY",
    "Internet",
    "deploy",
]
