"""Kafka client security: the settings refuse what would connect with less protection than they suggest (naming the
env var, never a value), and one function turns them into the options every client gets, the FastStream broker's
included."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from pydantic import ValidationError

from prizeflow_runtime.broker import create_broker
from prizeflow_runtime.kafka_security import KafkaSecurityError, faststream_security, kafka_client_options
from prizeflow_runtime.kafka_settings import KafkaSecurity
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import ServiceSettings, settings_or_exit
from prizeflow_runtime.topics import ProvisionSettings
from prizeflow_runtime.topics import _admin as topics_admin
from prizeflow_testkit.production import PRODUCTION_DATABASE_URL

SECRET = "s3cr3t-kafka-password-do-not-print"
KAFKA_ENV = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SASL_PASSWORD_FILE",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_SYSTEM_TRUST",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
    "KAFKA_SSL_KEY_PASSWORD_FILE",
    "KAFKA_ALLOW_PLAINTEXT",
)
PRODUCTION_IDENTITY = {
    "PRIZEFLOW_PROFILE": "production",
    "JWT_JWKS_URL": "https://id.example.com/jwks.json",
    "JWT_ISSUER": "https://id.example.com/",
    "JWT_AUDIENCE": "prizeflow-settlement",
    "DATABASE_URL": PRODUCTION_DATABASE_URL,
}


@pytest.fixture(autouse=True)
def _no_kafka_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in KAFKA_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)  # no `.env`


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(SECRET)  # as Strimzi's Secret key `password` is mounted: no trailing newline
    return path


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate in PEM (what Strimzi's cluster CA Secret holds as ca.crt)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def scram(password_file: Path, **values: Any) -> KafkaSecurity:
    return KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="settlement",
        sasl_password_file=password_file,
        **values,
    )


# --- validation ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SSL_CAFILE": "/ca.crt"}, "KAFKA_SASL_MECHANISM, "
         "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE not set: KAFKA_SECURITY_PROTOCOL=SASL_SSL authenticates"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
          "KAFKA_SASL_USERNAME": "settlement"}, "KAFKA_SASL_PASSWORD_FILE not set"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
          "KAFKA_SASL_USERNAME": "settlement", "KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SASL_PASSWORD_FILE": "/p"},
         "set one of KAFKA_SASL_PASSWORD_FILE or KAFKA_SASL_PASSWORD, not both"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "GSSAPI",
          "KAFKA_SASL_USERNAME": "settlement", "KAFKA_SASL_PASSWORD": SECRET}, "sasl_mechanism"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL"}, "KAFKA_SECURITY_PROTOCOL=SSL verifies the brokers: set KAFKA_SSL_CAFILE"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/ca.crt", "KAFKA_SSL_SYSTEM_TRUST": "true"},
         "set KAFKA_SSL_CAFILE (their CA), or KAFKA_SSL_SYSTEM_TRUST=true"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/ca.crt", "KAFKA_SSL_CERTFILE": "/u.crt"},
         "KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/ca.crt", "KAFKA_SSL_KEY_PASSWORD_FILE": "/kp"},
         "KAFKA_SSL_KEY_PASSWORD_FILE set without KAFKA_SSL_KEYFILE"),
        ({"KAFKA_SASL_USERNAME": "settlement", "KAFKA_SASL_PASSWORD": SECRET},
         "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not authenticate"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u",
          "KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SSL_CAFILE": "/ca.crt"},
         "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_SYSTEM_TRUST": "true", "KAFKA_ALLOW_PLAINTEXT": "true"},
         "KAFKA_ALLOW_PLAINTEXT set, but KAFKA_SECURITY_PROTOCOL=SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "security_protocol"),
    ],
)  # fmt: skip
def test_inconsistent_settings_are_refused_naming_the_env_var_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as err:
        KafkaSecurity()
    assert message in str(err.value)
    assert SECRET not in str(err.value)


def test_production_refuses_plaintext_unless_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch, password_file: Path
) -> None:
    for key, value in PRODUCTION_IDENTITY.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=r"KAFKA_SECURITY_PROTOCOL is PLAINTEXT .*KAFKA_ALLOW_PLAINTEXT=true"):
        ServiceSettings()
    monkeypatch.setenv("KAFKA_ALLOW_PLAINTEXT", "true")
    assert ServiceSettings().kafka_security.allow_plaintext
    monkeypatch.delenv("KAFKA_ALLOW_PLAINTEXT")
    for key, value in {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "settlement",
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
        "KAFKA_SSL_SYSTEM_TRUST": "true",
    }.items():
        monkeypatch.setenv(key, value)
    assert ServiceSettings().kafka_security.authenticates
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    for key in KAFKA_ENV:
        monkeypatch.delenv(key, raising=False)
    assert ServiceSettings().kafka_security.security_protocol == "PLAINTEXT"  # dev: the devstack's broker


def test_production_refuses_sasl_without_tls_unless_explicitly_allowed(
    monkeypatch: pytest.MonkeyPatch, password_file: Path
) -> None:
    """SASL_PLAINTEXT authenticates but carries payout requests and signatures in clear: production wants TLS, or the
    same explicit opt-in as PLAINTEXT; SASL PLAIN (the password itself on the wire) never goes without TLS."""
    for key, value in {
        **PRODUCTION_IDENTITY,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "settlement",
        "KAFKA_SASL_PASSWORD_FILE": str(password_file),
    }.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=r"KAFKA_SECURITY_PROTOCOL is SASL_PLAINTEXT \(no TLS\)"):
        ServiceSettings()
    monkeypatch.setenv("KAFKA_ALLOW_PLAINTEXT", "true")
    assert ServiceSettings().kafka_security.authenticates
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(
        ValidationError, match=r"KAFKA_SASL_MECHANISM=PLAIN over KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT"
    ):
        ServiceSettings()
    monkeypatch.setenv("PRIZEFLOW_PROFILE", "dev")
    monkeypatch.delenv("KAFKA_ALLOW_PLAINTEXT")
    assert ServiceSettings().kafka_security.security_protocol == "SASL_PLAINTEXT"  # dev: the SASL test broker


def test_a_process_refusing_to_start_names_the_kafka_setting_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", SECRET)
    with pytest.raises(SystemExit) as exit_:
        settings_or_exit(ServiceSettings, "prizeflow-unit")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "prizeflow-unit: refusing to start: KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME not set" in err
    assert SECRET not in err


def test_the_topics_job_reads_the_same_security_settings(monkeypatch: pytest.MonkeyPatch, password_file: Path) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "prizeflow-topics")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(password_file))
    options = kafka_client_options(ProvisionSettings().kafka_security)
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("prizeflow-topics", SECRET)
    monkeypatch.delenv("KAFKA_SASL_PASSWORD_FILE")
    with pytest.raises(ValidationError, match="KAFKA_SASL_PASSWORD_FILE not set"):
        ProvisionSettings()


def test_the_password_is_a_secret_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "u")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", SECRET)
    security = KafkaSecurity()
    assert SECRET not in repr(security)
    assert SECRET not in security.model_dump_json()


# --- mapping ---------------------------------------------------------------------------------------------------


def test_plaintext_maps_to_no_tls_and_no_sasl() -> None:
    assert kafka_client_options(KafkaSecurity()) == {"security_protocol": "PLAINTEXT", "ssl_context": None}


def test_sasl_reads_the_password_file_at_each_client(password_file: Path) -> None:
    security = scram(password_file)
    assert kafka_client_options(security) == {
        "security_protocol": "SASL_PLAINTEXT",
        "ssl_context": None,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "settlement",
        "sasl_plain_password": SECRET,
    }
    password_file.write_text("rotated\n")  # a rotated Secret: the next client reads the new one (newline dropped)
    assert kafka_client_options(security)["sasl_plain_password"] == "rotated"


def test_an_unreadable_password_file_names_the_env_var(password_file: Path) -> None:
    security = scram(password_file)
    password_file.unlink()
    with pytest.raises(KafkaSecurityError, match=r"KAFKA_SASL_PASSWORD_FILE: .* cannot be read"):
        kafka_client_options(security)
    password_file.write_text("")
    with pytest.raises(KafkaSecurityError, match=r"KAFKA_SASL_PASSWORD_FILE: .* is empty"):
        kafka_client_options(security)


def test_sasl_ssl_verifies_the_brokers_against_the_configured_ca(password_file: Path, ca_file: Path) -> None:
    security = KafkaSecurity(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="rewards",
        sasl_password_file=password_file,
        ssl_cafile=ca_file,
    )
    options = kafka_client_options(security)
    context = options.pop("ssl_context")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "cluster-ca"),),)]
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "rewards",
        "sasl_plain_password": SECRET,
    }


def test_a_ca_file_that_is_not_a_certificate_names_the_env_var(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.crt"
    bogus.write_text("not a certificate")
    security = KafkaSecurity(security_protocol="SSL", ssl_cafile=bogus)
    with pytest.raises(KafkaSecurityError, match="KAFKA_SSL_CAFILE: cannot be loaded"):
        kafka_client_options(security)


@pytest.mark.parametrize(
    ("mechanism", "cls"),
    [("SCRAM-SHA-512", SASLScram512), ("SCRAM-SHA-256", SASLScram256), ("PLAIN", SASLPlaintext)],
)
@pytest.mark.parametrize("tls", [False, True])
def test_the_broker_gets_the_same_options_through_faststreams_security_object(
    password_file: Path, ca_file: Path, mechanism: str, cls: type[BaseSecurity], tls: bool
) -> None:
    security = KafkaSecurity(
        security_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="payouts",
        sasl_password_file=password_file,
        ssl_cafile=ca_file if tls else None,
    )
    fs = faststream_security(security)
    assert type(fs) is cls
    parsed, ours = parse_security(fs), kafka_client_options(security)
    assert isinstance(parsed.pop("ssl_context"), ssl.SSLContext) is tls
    assert isinstance(ours.pop("ssl_context"), ssl.SSLContext) is tls
    assert parsed == ours


def test_tls_without_sasl_and_plaintext_map_through_faststream_too(ca_file: Path) -> None:
    tls = KafkaSecurity(security_protocol="SSL", ssl_cafile=ca_file)
    parsed = parse_security(faststream_security(tls))
    assert parsed["security_protocol"] == "SSL"
    assert isinstance(parsed["ssl_context"], ssl.SSLContext)
    assert parse_security(faststream_security(KafkaSecurity())) == kafka_client_options(KafkaSecurity())


async def test_every_client_the_runtime_builds_carries_the_options(password_file: Path) -> None:
    security = scram(password_file)
    broker = create_broker("127.0.0.1:9", client_id="settlement", security=security)
    connection = broker._connection_kwargs
    assert (connection["security_protocol"], connection["sasl_mechanism"]) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert (connection["sasl_plain_username"], connection["sasl_plain_password"]) == ("settlement", SECRET)
    producer = idempotent_producer("127.0.0.1:9", security=security)
    client = producer.client
    assert (client._security_protocol, client._sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert (client._sasl_plain_username, client._sasl_plain_password) == ("settlement", SECRET)
    await producer.stop()  # never started: nothing connected
    admin = topics_admin("127.0.0.1:9", security)
    assert (admin._client._security_protocol, admin._client._sasl_plain_password) == ("SASL_PLAINTEXT", SECRET)
    await admin.close()
