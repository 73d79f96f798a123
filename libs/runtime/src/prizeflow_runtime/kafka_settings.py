"""The Kafka connection settings every process reads (env `KAFKA_*`): its security protocol, SASL mechanism and
credentials, and its TLS trust. Plain pydantic: `prizeflow_runtime.kafka_security` turns them into client options,
`prizeflow_runtime.settings.ServiceSettings` carries them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSecurityProtocol(StrEnum):
    """How a Kafka client connects: Kafka's own names (`security.protocol`)."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def tls(self) -> bool:
        return self in (KafkaSecurityProtocol.SSL, KafkaSecurityProtocol.SASL_SSL)

    @property
    def sasl(self) -> bool:
        return self in (KafkaSecurityProtocol.SASL_PLAINTEXT, KafkaSecurityProtocol.SASL_SSL)


class KafkaSaslMechanism(StrEnum):
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    PLAIN = "PLAIN"


class KafkaSecurity(BaseSettings):
    """How every Kafka client of a process encrypts and authenticates (env `KAFKA_*`); turned into client options
    by `prizeflow_runtime.kafka_security.kafka_client_options`, the one place that does it.

    Secrets are read from files (`KAFKA_SASL_PASSWORD_FILE`, a mounted Secret) each time a client is built, so a
    rotated password is picked up by the next client; `KAFKA_SASL_PASSWORD` exists for a shell and is never logged.
    What is set must be used: a setting the protocol would ignore (a CA with PLAINTEXT, a password with SSL) is
    refused rather than silently dropped. Whether PLAINTEXT is acceptable depends on the profile (`ServiceSettings`).
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore", hide_input_in_errors=True)

    security_protocol: KafkaSecurityProtocol = Field(
        default=KafkaSecurityProtocol.PLAINTEXT, description="PLAINTEXT (dev only), SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: KafkaSaslMechanism | None = Field(default=None, description="SCRAM-SHA-512, SCRAM-SHA-256, PLAIN")
    sasl_username: str | None = Field(default=None, min_length=1)
    sasl_password: SecretStr | None = Field(default=None, description="Prefer KAFKA_SASL_PASSWORD_FILE")
    sasl_password_file: Path | None = Field(default=None, description="A file holding the SASL password (a Secret)")
    ssl_cafile: Path | None = Field(default=None, description="PEM CA bundle that signed the brokers' certificates")
    ssl_system_trust: bool = Field(
        default=False, description="Verify the brokers against the system's CAs instead of KAFKA_SSL_CAFILE"
    )
    ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of KAFKA_SSL_CERTFILE")
    ssl_key_password_file: Path | None = Field(default=None, description="A file holding KAFKA_SSL_KEYFILE's password")
    allow_plaintext: bool = Field(
        default=False,
        description="Production only: accept a connection without TLS (PLAINTEXT or SASL_PLAINTEXT) explicitly",
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        """Refuse, naming the env vars, whatever would connect with less protection than the settings suggest."""
        protocol = self.security_protocol
        sasl_set = [
            env
            for env, value in (
                ("KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                ("KAFKA_SASL_USERNAME", self.sasl_username),
                ("KAFKA_SASL_PASSWORD", self.sasl_password),
                ("KAFKA_SASL_PASSWORD_FILE", self.sasl_password_file),
            )
            if value is not None
        ]
        if protocol.sasl:
            missing = [
                env
                for env, value in (
                    ("KAFKA_SASL_MECHANISM", self.sasl_mechanism),
                    ("KAFKA_SASL_USERNAME", self.sasl_username),
                    ("KAFKA_SASL_PASSWORD_FILE", self.sasl_password_file or self.sasl_password),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"{', '.join(missing)} not set: KAFKA_SECURITY_PROTOCOL={protocol} authenticates")
            if self.sasl_password is not None and self.sasl_password_file is not None:
                raise ValueError("set one of KAFKA_SASL_PASSWORD_FILE or KAFKA_SASL_PASSWORD, not both")
        elif sasl_set:
            raise ValueError(f"{', '.join(sasl_set)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not authenticate")
        if self.allow_plaintext and protocol.tls:
            raise ValueError(f"KAFKA_ALLOW_PLAINTEXT set, but KAFKA_SECURITY_PROTOCOL={protocol}")
        ssl_set = [
            env
            for env, value in (
                ("KAFKA_SSL_CAFILE", self.ssl_cafile),
                ("KAFKA_SSL_SYSTEM_TRUST", self.ssl_system_trust or None),
                ("KAFKA_SSL_CERTFILE", self.ssl_certfile),
                ("KAFKA_SSL_KEYFILE", self.ssl_keyfile),
                ("KAFKA_SSL_KEY_PASSWORD_FILE", self.ssl_key_password_file),
            )
            if value is not None
        ]
        if not protocol.tls:
            if ssl_set:
                raise ValueError(f"{', '.join(ssl_set)} set, but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS")
            return self
        if (self.ssl_cafile is None) == (not self.ssl_system_trust):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} verifies the brokers: set KAFKA_SSL_CAFILE (their CA), "
                "or KAFKA_SSL_SYSTEM_TRUST=true to trust the system's CAs (one of them)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together (mutual TLS)")
        if self.ssl_key_password_file is not None and self.ssl_keyfile is None:
            raise ValueError("KAFKA_SSL_KEY_PASSWORD_FILE set without KAFKA_SSL_KEYFILE")
        return self

    @property
    def authenticates(self) -> bool:
        return self.security_protocol.sasl or self.ssl_certfile is not None
