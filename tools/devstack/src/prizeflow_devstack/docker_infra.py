"""PostgreSQL + Kafka as testcontainers when a Docker engine answers.

Ryuk is disabled so the containers outlive the creating process like the local binaries do;
their ids live in state.json and `stop_infra` removes them.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from prizeflow_devstack.state import DockerState, State

POSTGRES_IMAGE = "postgres:15-alpine"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.7.1"


def _running(container_id: str | None) -> bool:
    if not container_id:
        return False
    result = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", container_id],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return result.returncode == 0 and result.stdout.strip() == "true"


def active(state: State) -> bool:
    return bool(state.docker.postgres_container or state.docker.kafka_container)


def ensure(state: State, *, need_pg: bool, need_kafka: bool) -> tuple[str, str]:
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    docker = state.docker
    if need_pg and not _running(docker.postgres_container):
        from testcontainers.postgres import PostgresContainer

        pg: Any = PostgresContainer(
            POSTGRES_IMAGE,
            username="postgres",
            password="postgres",  # noqa: S106 - throwaway local test container
            dbname="postgres",
            driver="asyncpg",
        ).with_command("postgres -c max_connections=300 -c shared_buffers=256MB")
        pg.start()
        docker.postgres_container = pg.get_wrapped_container().id
        docker.postgres_url = pg.get_connection_url()
    if need_kafka and not _running(docker.kafka_container):
        from testcontainers.kafka import KafkaContainer

        kf: Any = KafkaContainer(KAFKA_IMAGE).with_kraft()
        kf.start()
        docker.kafka_container = kf.get_wrapped_container().id
        docker.kafka_bootstrap = kf.get_bootstrap_server()
    return docker.postgres_url or "", docker.kafka_bootstrap or ""


def stop(state: State) -> list[str]:
    stopped = []
    for name, cid in (("kafka", state.docker.kafka_container), ("postgres", state.docker.postgres_container)):
        if cid:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60, check=False)
            stopped.append(f"{name} (container {cid[:12]})")
    state.docker = DockerState()
    return stopped
