"""Webhooks settings: the runtime's (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, HTTP_PORT, ...) plus its own."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from prizeflow_runtime.settings import ServiceSettings


class WebhooksSettings(ServiceSettings):
    service_name: str = Field(default="webhooks", description="Name in logs, metrics and CloudEvents source")
    http_port: int = Field(default=8050, ge=0, le=65535)
    webhooks_providers_file: Path = Field(
        description="The providers file (YAML): who may call in, how each signs, secrets as env var names; or a "
        "directory of *.yaml parts merged"
    )
    webhooks_write_batch_max: int = Field(
        default=500, ge=1, le=5000, description="Most deliveries one group commit takes"
    )
    webhooks_write_concurrency: int = Field(
        default=2, ge=1, le=16, description="Group commits in flight at once (each holds a database connection)"
    )
    # A provider retries a delivery for days (Stripe: 3) with fresh signatures; an older one is refused by its
    # signature's timestamp anyway. The row (raw body up to 1 MiB) is not needed after that (ADR 0008).
    webhooks_delivery_retention_days: float = Field(
        default=30.0, ge=3.0, description="Deliveries older than this are deleted (at least the providers' retries)"
    )
    webhooks_retention_interval_s: float = Field(
        default=3_600.0, ge=1.0, description="How often deliveries past their retention are deleted"
    )
