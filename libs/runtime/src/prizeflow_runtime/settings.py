"""Settings base: every service's settings subclass this and add their own env vars."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RetrySettings(BaseSettings):
    """How a failing handler is retried in place before its message goes to the DLQ."""

    model_config = SettingsConfigDict(env_prefix="CONSUMER_RETRY_", extra="ignore")

    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_initial_ms: int = Field(default=100, ge=0)
    backoff_max_ms: int = Field(default=5_000, ge=0)


DAY_MS = 86_400_000


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

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    service_name: str = Field(default="prizeflow", description="Name in logs, metrics and CloudEvents source")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/prizeflow",
        description="SQLAlchemy URL of this service's own database",
    )
    database_pool_size: int = Field(default=10, ge=1)
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
    jwt_secret: SecretStr = Field(
        default=SecretStr("dev-only-secret-change-me-0123456789abcdef"),
        description="HS256 key for admin/player bearer tokens",
    )
    jwt_issuer: str = "prizeflow"
    jwt_audience: str = "prizeflow"
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_interval_ms: int = Field(default=500, ge=10)
    outbox_relay: Literal["inline", "external"] = Field(
        default="inline",
        description="inline: this process relays its outbox; external: `python -m prizeflow_runtime.relay` does",
    )
    consumer_batch_size: int = Field(default=500, ge=1)
    consumer_lanes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Concurrent transactions a poll is split into by partition (consumers that allow it)",
    )
    consumer_retry: RetrySettings = Field(default_factory=RetrySettings)
    kafka_topics: TopicSettings = Field(default_factory=TopicSettings)
    startup_retry_max_ms: int = Field(
        default=10_000,
        ge=100,
        description="Longest pause between start-up attempts while Kafka, PostgreSQL or the topics are missing",
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept plain postgres URLs (as DATABASE_URL usually is) and use the asyncpg driver."""
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        return url

    @property
    def source(self) -> str:
        """CloudEvents `source` of events this service emits."""
        return f"/prizeflow/{self.service_name}"
