"""Settlement settings: the runtime's (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, HTTP_PORT, ...) plus its own."""

from __future__ import annotations

from pydantic import Field

from prizeflow_runtime.settings import ServiceSettings


class SettlementSettings(ServiceSettings):
    service_name: str = Field(default="settlement", description="Name in logs, metrics and CloudEvents source")
    http_port: int = Field(default=8010, ge=0, le=65535)
    consumer_lanes: int = Field(
        default=3,
        ge=1,
        le=64,
        description="Concurrent transactions a poll of game events is split into, by partition",
    )
    rounds_gauge_interval_s: float = Field(
        default=15.0, gt=0, description="How often the rounds-by-state gauge is refreshed from the database"
    )
    spec_cache_rounds: int = Field(
        default=20_000,
        ge=0,
        description="Round terms kept in memory (about 3 KB each) so events of a known round skip reading them; "
        "0 disables",
    )
