"""Kafka client security: `KafkaSecurity` settings → the options every Kafka client of a process is built with.

`kafka_client_options` is the one function that does it; the aiokafka producer, admin and consumer clients take
its result as keyword arguments, and the FastStream broker takes the same options as the `security=` object
FastStream documents (`faststream_security`, which FastStream turns back into exactly these options). Secrets
are read from their files here, at each client's construction, and live only in the client's memory: never in a
log line or an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from prizeflow_runtime.kafka_settings import KafkaSaslMechanism, KafkaSecurity, KafkaSecurityProtocol

__all__ = [
    "KafkaAuthenticationError",
    "KafkaSecurityError",
    "authentication_problem",
    "faststream_security",
    "kafka_client_options",
]

_PROBE_TIMEOUT_MS = 10_000


class KafkaSecurityError(RuntimeError):
    """A file the Kafka security settings name cannot be used; the message names the env var, never a secret."""


class KafkaAuthenticationError(KafkaError):  # type: ignore[misc]  # aiokafka is untyped
    """The brokers refused this process's identity (or TLS could not verify them); names the settings to check."""

    retriable = False

    def __str__(self) -> str:  # aiokafka's errors prefix their class name; this message stands on its own
        return str(self.args[0]) if self.args else "Kafka refused this process"


def _read_secret(path: Path, env: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise KafkaSecurityError(f"{env}: {path} cannot be read ({type(err).__name__})") from None
    if not value:
        raise KafkaSecurityError(f"{env}: {path} is empty")
    return value


def _ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """Verifying context (hostname checked, as aiokafka always does): the configured CA or, if chosen, the system's."""
    password = None
    if security.ssl_key_password_file is not None:
        password = _read_secret(security.ssl_key_password_file, "KAFKA_SSL_KEY_PASSWORD_FILE")
    env = "KAFKA_SSL_CAFILE"
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=security.ssl_cafile)
        if security.ssl_certfile is not None:
            env = "KAFKA_SSL_CERTFILE, KAFKA_SSL_KEYFILE"
            context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile, password)
    except (OSError, ssl.SSLError) as err:
        raise KafkaSecurityError(f"{env}: cannot be loaded ({type(err).__name__})") from None
    return context


def kafka_client_options(security: KafkaSecurity) -> dict[str, Any]:
    """aiokafka keyword arguments (`security_protocol`, `ssl_context`, `sasl_*`) for these settings.

    Raises `KafkaSecurityError` when a file they name cannot be used."""
    protocol = security.security_protocol
    options: dict[str, Any] = {
        "security_protocol": protocol.value,
        "ssl_context": _ssl_context(security) if protocol.tls else None,
    }
    if protocol.sasl:
        if security.sasl_password_file is not None:
            password = _read_secret(security.sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")
        elif security.sasl_password is not None:
            password = security.sasl_password.get_secret_value()
        else:  # the settings' validator refuses this; a hand-built object must not slip through unauthenticated
            raise KafkaSecurityError("KAFKA_SASL_PASSWORD_FILE not set")
        mechanism = security.sasl_mechanism
        if mechanism is None or security.sasl_username is None:
            raise KafkaSecurityError("KAFKA_SASL_MECHANISM and KAFKA_SASL_USERNAME must be set")
        options |= {
            "sasl_mechanism": mechanism.value,
            "sasl_plain_username": security.sasl_username,
            "sasl_plain_password": password,
        }
    return options


_FASTSTREAM_SASL: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    KafkaSaslMechanism.PLAIN.value: SASLPlaintext,
    KafkaSaslMechanism.SCRAM_SHA_256.value: SASLScram256,
    KafkaSaslMechanism.SCRAM_SHA_512.value: SASLScram512,
}


def faststream_security(security: KafkaSecurity) -> BaseSecurity:
    """The same options as FastStream's `security=` object for `KafkaBroker` (faststream.security)."""
    options = kafka_client_options(security)
    context: ssl.SSLContext | None = options["ssl_context"]
    if "sasl_mechanism" not in options:
        return BaseSecurity(ssl_context=context, use_ssl=context is not None)
    sasl = _FASTSTREAM_SASL[options["sasl_mechanism"]]
    return sasl(
        options["sasl_plain_username"], options["sasl_plain_password"], ssl_context=context, use_ssl=context is not None
    )


def _refusal(security: KafkaSecurity, err: BaseException) -> KafkaAuthenticationError | None:
    protocol = security.security_protocol
    if isinstance(err, (SaslAuthenticationFailed, AuthenticationFailedError)):
        return KafkaAuthenticationError(
            f"Kafka refused the credentials ({security.sasl_mechanism} as user {security.sasl_username!r}): "
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE against the broker's user"
        )
    if isinstance(err, UnsupportedSaslMechanismError):
        return KafkaAuthenticationError(
            f"the Kafka listener does not offer KAFKA_SASL_MECHANISM={security.sasl_mechanism}"
        )
    if isinstance(err, ssl.SSLCertVerificationError):
        trust = "KAFKA_SSL_CAFILE" if security.ssl_cafile is not None else "the system's CAs (KAFKA_SSL_SYSTEM_TRUST)"
        return KafkaAuthenticationError(
            f"the Kafka brokers' TLS certificate is not trusted by {trust} ({err.verify_message})"
        )
    if isinstance(err, ssl.SSLError):
        return KafkaAuthenticationError(
            f"TLS with the Kafka brokers failed ({err.reason}): is KAFKA_SECURITY_PROTOCOL={protocol} their listener's?"
        )
    return None


async def authentication_problem(bootstrap_servers: str, security: KafkaSecurity) -> KafkaAuthenticationError | None:
    """Why the brokers refuse this process, if they do: aiokafka's clients only say they could not bootstrap (the
    broker's answer goes to a log line), so a failed start-up asks one bootstrap server directly, to report a wrong
    password, mechanism or CA as such rather than as an outage. None: no refusal seen (unreachable, or fine)."""
    if security.security_protocol is KafkaSecurityProtocol.PLAINTEXT:
        return None
    options = kafka_client_options(security)
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            continue
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"),
                    int(port),
                    client_id="prizeflow-probe",
                    request_timeout_ms=_PROBE_TIMEOUT_MS,
                    **options,
                ),
                _PROBE_TIMEOUT_MS / 1000,
            )
        except (OSError, KafkaError, TimeoutError) as err:
            refusal = _refusal(security, err)
            if refusal is not None:
                return refusal
            continue
        with contextlib.suppress(Exception):
            conn.close()
        return None
    return None
