"""Settings base: every service's settings subclass this and add their own env vars."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from prizeflow_runtime.kafka_settings import KafkaSaslMechanism, KafkaSecurity, KafkaSecurityProtocol


class Profile(StrEnum):
    """`production` (the default) takes every key and identity setting from the platform; only an explicit
    `PRIZEFLOW_PROFILE=dev` allows local keys (HS256, `file://`/`http://` JWKS) and dev defaults."""

    PRODUCTION = "production"
    DEV = "dev"


DEV_ISSUER: Final = "prizeflow-dev"
MIN_HS256_KEY_BYTES: Final = 32  # RFC 7518 §3.2: an HMAC key at least as long as the hash
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


def audience_for(service_name: str) -> str:
    """The dev default audience of a service's tokens: one per service, so a token for one is refused by another."""
    return f"prizeflow-{service_name}"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def async_database_url(url: str) -> str:
    """Accept plain postgres URLs (as DATABASE_URL usually is) and use the asyncpg driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    return url


class RetrySettings(BaseSettings):
    """How a failing handler is retried in place before its message goes to the DLQ."""

    model_config = SettingsConfigDict(env_prefix="CONSUMER_RETRY_", extra="ignore")

    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_initial_ms: int = Field(default=100, ge=0)
    backoff_max_ms: int = Field(default=5_000, ge=0)


class DatabaseTimeouts(BaseSettings):
    """PostgreSQL's limits on every connection a process opens (asyncpg `server_settings`; 0 turns one off).

    The defaults sit well above the longest legitimate statement of every service (a consumer poll's batch
    statements, a claim batch waiting for its wallets' locks behind another batch, the inbox maintenance whose
    drops have their own 5 s lock_timeout, the relay's batch read and delete) and below what a stuck request is
    worth: a statement cut off is rolled back and retried like a lost deadlock or an outage. The relay's VACUUM
    runs without a statement limit; migrations have their own limits (`prizeflow_runtime.migrations`)."""

    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    statement_timeout_ms: int = Field(
        default=60_000, ge=0, description="A statement running longer is cancelled (57014); lock waits count"
    )
    lock_timeout_ms: int = Field(
        default=30_000, ge=0, description="A lock waited for longer fails the statement (55P03)"
    )
    idle_in_transaction_timeout_ms: int = Field(
        default=300_000,
        ge=0,
        description="A session idle inside an open transaction that long is ended (a leaked transaction's locks)",
    )

    @model_validator(mode="after")
    def _lock_wait_within_statement(self) -> DatabaseTimeouts:
        """A lock wait counts towards the statement's time: a lock_timeout past the statement_timeout never fires."""
        if self.statement_timeout_ms and self.lock_timeout_ms >= self.statement_timeout_ms:
            raise ValueError("DATABASE_LOCK_TIMEOUT_MS must be below DATABASE_STATEMENT_TIMEOUT_MS (or that one 0)")
        return self

    @classmethod
    def defaults(cls) -> DatabaseTimeouts:
        """The defaults, without reading the environment (an engine built without settings)."""
        return cls.model_construct()

    def server_settings(self, *, statement_timeout: bool = True) -> dict[str, str]:
        """asyncpg's `server_settings`; `statement_timeout=False` for maintenance statements without a limit."""
        return {
            "statement_timeout": str(self.statement_timeout_ms if statement_timeout else 0),
            "lock_timeout": str(self.lock_timeout_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_timeout_ms),
        }


DAY_MS = 86_400_000


class InboxSettings(BaseSettings):
    """How long a consumer remembers what it processed (ADR 0008), env `INBOX_*`.

    The inbox is partitioned by each event's own time and partitions older than the dedup horizon are dropped. An
    event older than the horizon is refused (`beyond_dedup_horizon`), so dropping never lets one apply twice; and
    start-up refuses a horizon shorter than a consumed topic's retention plus the longest replay an operator may
    do, so no event Kafka can still deliver is refused for its age."""

    model_config = SettingsConfigDict(env_prefix="INBOX_", extra="ignore")

    dedup_horizon_days: float = Field(
        default=10.0, ge=1.0, le=3_650.0, description="How long the inbox remembers an event, by the event's time"
    )
    max_replay_days: float = Field(
        default=2.0,
        ge=0.0,
        description="Longest an event may reach a consumer beyond its topic's retention (relay backlog, a replay)",
    )
    max_clock_skew_s: float = Field(
        default=600.0, ge=1.0, le=86_400.0, description="How far ahead of this clock an event's time may be"
    )
    partition_hours: int = Field(default=24, ge=1, le=24 * 7, description="Width of one inbox partition")
    maintenance_interval_s: float = Field(
        default=3_600.0, ge=1.0, description="How often partitions are created ahead and dropped past the horizon"
    )
    accept_infinite_retention: bool = Field(
        default=False,
        description="Start even though a consumed topic keeps records for ever (retention.ms -1): a replay of "
        "records older than the horizon is then dead-lettered (beyond_dedup_horizon), never applied",
    )

    @model_validator(mode="after")
    def _partitions_within_horizon(self) -> InboxSettings:
        if self.partition_hours > self.dedup_horizon_days * 24:
            raise ValueError(
                f"INBOX_PARTITION_HOURS ({self.partition_hours}) is longer than INBOX_DEDUP_HORIZON_DAYS "
                f"({self.dedup_horizon_days:g}): a partition could never be dropped whole in time"
            )
        return self


class TopicSettings(BaseSettings):
    """How topics are provisioned (`python -m prizeflow_runtime.topics provision`) and the partitions every
    service expects to find at start. The defaults suit one dev broker; production sets RF 3 and min ISR 2."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_TOPIC_", extra="ignore")

    partitions: int | None = Field(
        default=None, ge=1, le=1_000, description="Partitions of every topic and DLQ; unset: the contract's count"
    )
    replication_factor: int = Field(default=1, ge=1, le=16)
    min_insync_replicas: int = Field(default=1, ge=1, le=16)
    retention_ms: int = Field(default=7 * DAY_MS, ge=-1, description="retention.ms of topics (-1: forever)")
    dlq_retention_ms: int = Field(default=28 * DAY_MS, ge=-1, description="retention.ms of `.dlq` topics")

    @model_validator(mode="after")
    def _isr_within_replicas(self) -> TopicSettings:
        """acks=all could never succeed if more in-sync replicas were required than there are replicas."""
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"KAFKA_TOPIC_MIN_INSYNC_REPLICAS ({self.min_insync_replicas}) exceeds "
                f"KAFKA_TOPIC_REPLICATION_FACTOR ({self.replication_factor})"
            )
        return self


class ServiceSettings(BaseSettings):
    """Settings every Prizeflow process shares. Values come from the environment (and `.env`)."""

    # Never echo a rejected value (a secret, a URL with credentials) into an error message or a log line.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    # A process with no authenticated route (the signer, the simulator) needs no token verification settings.
    verifies_tokens: ClassVar[bool] = True

    prizeflow_profile: Profile = Field(
        default=Profile.PRODUCTION, description="production, or dev: local keys and dev defaults allowed"
    )
    service_name: str = Field(default="prizeflow", description="Name in logs, metrics and CloudEvents source")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/prizeflow",
        description="SQLAlchemy URL of this service's own database",
    )
    database_pool_size: int = Field(default=10, ge=1)
    database_timeouts: DatabaseTimeouts = Field(default_factory=DatabaseTimeouts)
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092")
    kafka_client_id: str | None = None
    kafka_topic_suffix: str = Field(
        default="",
        pattern=r"^[a-z0-9.\-]*$",
        description="Appended to every topic and consumer group name: isolates tests and demos on a shared broker",
    )
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    log_json: bool = True
    jwt_jwks_url: str | None = Field(
        default=None,
        description="The identity provider's JWKS (https://; dev also http:// and file://): keys that sign tokens",
    )
    jwt_issuer: str | None = Field(default=None, min_length=1, description="Required `iss` (dev: prizeflow-dev)")
    jwt_audience: str | None = Field(
        default=None, min_length=1, description="Required `aud`, one per service (dev: prizeflow-<service>)"
    )
    jwt_roles_claim: str = Field(default="roles", min_length=1, description="The claim listing the caller's roles")
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "EdDSA"], description="Accepted signature algorithms"
    )
    jwt_leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp and nbf")
    jwt_jwks_cache_s: float = Field(default=300.0, gt=0, description="Keys are refetched when older than this")
    jwt_jwks_min_refresh_s: float = Field(
        default=30.0, ge=0, description="At most one JWKS fetch per this interval (unknown kid, failed fetch)"
    )
    jwt_jwks_timeout_s: float = Field(default=5.0, gt=0, le=60, description="Deadline of one JWKS fetch")
    jwt_secret: SecretStr | None = Field(
        default=None, description="Dev profile only: an HS256 key (at least 32 bytes) instead of a JWKS"
    )
    jwt_verified_cache_size: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Tokens already verified kept (by SHA-256) until their exp, while their key is unchanged; 0: none",
    )
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_ms: int = Field(default=500, ge=10)
    outbox_ack_timeout_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="a batch Kafka has not acknowledged by then means a stalled producer: the relay replaces it",
    )
    outbox_publish_after_commit: bool = Field(
        default=False,
        description="The process publishes a transaction's events right after it commits; the relay only sweeps. Off "
        "by default: events staged on a bare connection (payouts' TON and Stellar drivers) reach no publisher, and "
        "the sweep they ask for races a publisher into duplicate records (consumers drop them by event id)",
    )
    outbox_sweep_after_ms: int = Field(
        default=2_000,
        ge=100,
        description="With publish after commit: the relay sweeps rows older than this (a crash or a failed publish)",
    )
    outbox_relay: Literal["inline", "external"] = Field(
        default="inline",
        description="inline: this process relays its outbox; external: `python -m prizeflow_runtime.relay` does",
    )

    @property
    def outbox_sweep_after_s(self) -> float:
        """What the relay leaves to publishers: rows younger than this (0: nothing, the relay publishes all)."""
        return self.outbox_sweep_after_ms / 1000 if self.outbox_publish_after_commit else 0.0

    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_lanes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Concurrent transactions a poll is split into by partition (consumers that allow it)",
    )
    consumer_retry: RetrySettings = Field(default_factory=RetrySettings)
    inbox: InboxSettings = Field(default_factory=InboxSettings)
    kafka_topics: TopicSettings = Field(default_factory=TopicSettings)
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    startup_retry_max_ms: int = Field(
        default=10_000,
        ge=100,
        description="Longest pause between start-up attempts while Kafka, PostgreSQL or the topics are missing",
    )
    metrics_sample_interval_ms: int = Field(
        default=10_000,
        ge=100,
        description="How often the sampled gauges (readiness, outbox age, consumer lag) are refreshed",
    )

    _split_algorithms = field_validator("jwt_algorithms", mode="before")(_comma_list)

    @model_validator(mode="after")
    def _identity(self) -> ServiceSettings:
        """Refuse to start, naming the env vars, rather than verify tokens against a guessable default."""
        unknown = sorted(set(self.jwt_algorithms) - ASYMMETRIC_ALGORITHMS)
        if unknown or not self.jwt_algorithms:
            raise ValueError(f"JWT_ALGORITHMS: only asymmetric algorithms ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})")
        if not self.verifies_tokens:
            return self
        dev = self.prizeflow_profile is Profile.DEV
        if self.jwt_secret is not None:
            if not dev:
                raise ValueError("JWT_SECRET (HS256) is for PRIZEFLOW_PROFILE=dev only; set JWT_JWKS_URL instead")
            if self.jwt_jwks_url is not None:
                raise ValueError("set one of JWT_JWKS_URL or JWT_SECRET, not both")
            if len(self.jwt_secret.get_secret_value().encode()) < MIN_HS256_KEY_BYTES:
                raise ValueError(f"JWT_SECRET must be at least {MIN_HS256_KEY_BYTES} bytes long")
            return self
        if dev:
            if self.jwt_jwks_url is None:
                raise ValueError("JWT_JWKS_URL is not set (the devstack's file:// JWKS, or JWT_SECRET for HS256)")
        else:
            missing = [
                env
                for env, value in (
                    ("JWT_JWKS_URL", self.jwt_jwks_url),
                    ("JWT_ISSUER", self.jwt_issuer),
                    ("JWT_AUDIENCE", self.jwt_audience),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} not set: production verifies the identity provider's tokens "
                    "(PRIZEFLOW_PROFILE=dev allows local keys)"
                )
        url = self.jwt_jwks_url or ""
        schemes = ("https://", "http://", "file://") if dev else ("https://",)
        if not url.startswith(schemes):
            raise ValueError(
                f"JWT_JWKS_URL must start with {' or '.join(schemes)} in the {self.prizeflow_profile} profile"
            )
        return self

    @model_validator(mode="after")
    def _database_given(self) -> ServiceSettings:
        """The defaults of DATABASE_URL (a local superuser, no password) are a dev convenience: the production
        profile refuses to start without one given."""
        if self.prizeflow_profile is Profile.PRODUCTION and "database_url" not in self.model_fields_set:
            raise ValueError("DATABASE_URL is not set: the production profile has no default database")
        return self

    @model_validator(mode="after")
    def _kafka_transport(self) -> ServiceSettings:
        """Outside dev, Kafka is reached encrypted and as this service's own principal (its ACLs): PLAINTEXT would
        carry payouts in clear and let any pod on the network act as any service; SASL_PLAINTEXT authenticates but
        still carries payout requests and signatures in clear (and SASL PLAIN the password too). Anything without
        TLS takes an explicit opt-in, and SASL PLAIN never goes over a connection without TLS."""
        kafka = self.kafka_security
        protocol = kafka.security_protocol
        if self.prizeflow_profile is not Profile.PRODUCTION or protocol.tls:
            return self
        if protocol is KafkaSecurityProtocol.PLAINTEXT and not kafka.allow_plaintext:
            raise ValueError(
                "KAFKA_SECURITY_PROTOCOL is PLAINTEXT (the default): the production profile connects to Kafka with "
                "TLS and SASL (SASL_SSL and KAFKA_SASL_*), or KAFKA_ALLOW_PLAINTEXT=true accepts plaintext explicitly"
            )
        if kafka.sasl_mechanism is KafkaSaslMechanism.PLAIN:
            raise ValueError(
                f"KAFKA_SASL_MECHANISM=PLAIN over KAFKA_SECURITY_PROTOCOL={protocol} sends the password in clear: "
                "use SASL_SSL"
            )
        if not kafka.allow_plaintext:
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL is {protocol} (no TLS): the production profile connects to Kafka with "
                "TLS (SASL_SSL), or KAFKA_ALLOW_PLAINTEXT=true accepts a connection without TLS explicitly"
            )
        return self

    @property
    def issuer(self) -> str:
        """The `iss` tokens must carry (JWT_ISSUER; dev default `prizeflow-dev`)."""
        if self.jwt_issuer is not None:
            return self.jwt_issuer
        if self.prizeflow_profile is Profile.DEV:
            return DEV_ISSUER
        raise ValueError("JWT_ISSUER is not set")

    @property
    def audience(self) -> str:
        """The `aud` this service accepts (JWT_AUDIENCE; dev default `prizeflow-<service>`)."""
        if self.jwt_audience is not None:
            return self.jwt_audience
        if self.prizeflow_profile is Profile.DEV:
            return audience_for(self.service_name)
        raise ValueError("JWT_AUDIENCE is not set")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        return async_database_url(url)

    @property
    def source(self) -> str:
        """CloudEvents `source` of events this service emits."""
        return f"/prizeflow/{self.service_name}"


S = TypeVar("S", bound=BaseSettings)


def settings_or_exit(cls: type[S], program: str) -> S:
    """Settings from the environment, or exit 2 naming what is wrong (never the values: they may be secrets)."""
    try:
        return cls()
    except ValidationError as err:
        for error in err.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            print(f"{program}: refusing to start: {where + ': ' if where else ''}{message}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
