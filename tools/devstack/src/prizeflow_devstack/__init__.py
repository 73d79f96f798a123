"""Prizeflow devstack: real PostgreSQL and Kafka without Docker, a process supervisor and `prizeflow-dev`."""

from prizeflow_devstack.infra import (
    Infra,
    InfraError,
    create_database,
    drop_database,
    ensure_infra,
    restart_kafka,
    restart_postgres,
    status,
    stop_infra,
)

__all__ = [
    "Infra",
    "InfraError",
    "create_database",
    "drop_database",
    "ensure_infra",
    "restart_kafka",
    "restart_postgres",
    "status",
    "stop_infra",
]
