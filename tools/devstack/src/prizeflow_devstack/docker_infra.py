"""PostgreSQL + Kafka as testcontainers when a Docker engine (or podman's Docker-compatible API) answers.

The images are the official ones the compose file and the Kubernetes docs name (`images.POSTGRES_IMAGE`,
`images.kafka_image()`; on a machine with no registry, `images.ensure_official` builds local stand-ins under those
names). PostgreSQL is testcontainers' `PostgresContainer`. Kafka is a plain `DockerContainer` configured through
the apache/kafka image's documented `KAFKA_*` variables: testcontainers' `KafkaContainer` only drives Confluent
images (its start script sources `/etc/confluent/docker/*` and `with_kraft()` rejects any tag below 7.0.0, i.e.
every apache/kafka 3.x/4.x tag).

The broker's host-side listener must be advertised with the port the engine maps, which is only known once the
container runs: the container starts waiting for a file, we read the mapped port, copy the advertised listener in
(`put_archive`), and the image's own start script (`/etc/kafka/docker/run`) takes over. No host port is guessed.

What does not work as testcontainers ships it, under podman 4.3 (proved by
tests/containers/test_testcontainers_podman.py), and how this module copes:

- Ryuk (the reaper) stays disabled, here and with Docker: its image (`testcontainers/ryuk`) cannot be pulled without
  a registry and has no local stand-in, and it would remove the containers when the process that started them
  exits, while the devstack wants them to outlive it like its local binaries; their ids live in `state.json` and
  `stop` removes them. (Whether Ryuk itself runs under podman was therefore not tried here.)
- `get_container_host_ip()` raises `KeyError: 'HostConfig'` in the `gateway_ip`/`bridge_ip` connection modes:
  testcontainers reads `HostConfig.NetworkMode` from the container *list* (`GET /containers/json`), which podman
  4.3 does not return (only the inspect endpoint has it). testcontainers picks those modes whenever `/.dockerenv`
  exists and the socket is local — as on this machine, itself a container running podman inside it. Podman publishes
  ports on the host that serves the API (podman machine forwards them to the client's host), so the `docker_host`
  mode is right: with podman, `ensure` sets it in testcontainers' process-wide configuration unless
  `TESTCONTAINERS_CONNECTION_MODE` chose a mode.
- Everything else testcontainers does here works over podman's API: image lookup, create/start, port mapping,
  `exec` (PostgresContainer's psql readiness check), logs (the Kafka wait strategy), `put_archive`, remove.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from collections.abc import Iterator
from typing import Any

from prizeflow_devstack import images, kafka
from prizeflow_devstack.state import DockerState, State

KAFKA_READY_DEADLINE_S = 120.0
_EXTERNAL_PORT = 9094  # the listener clients outside the engine use; advertised with its mapped host port
_ADVERTISED_FILE = "/tmp/prizeflow-advertised-listeners"  # noqa: S108 - inside the container, written once by us

# Single-node KRaft, as docker-compose.yml and the devstack's local broker configure it (topics auto-created like
# the local broker, so the integration tier behaves the same on either).
KAFKA_ENV: dict[str, str] = {
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": f"PLAINTEXT://:9092,CONTROLLER://:9093,EXTERNAL://:{_EXTERNAL_PORT}",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
    "KAFKA_NUM_PARTITIONS": "3",
    "KAFKA_DEFAULT_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "12",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
    "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
    "KAFKA_HEAP_OPTS": "-Xmx512m -Xms256m",
    "CLUSTER_ID": "5L6g3nShT-eMCtK--X86sw",
}
# Wait for the advertised listeners, then hand over to the image's own start script (apache/kafka's CMD).
_KAFKA_COMMAND = [
    "sh", "-c",
    f"while [ ! -s {_ADVERTISED_FILE} ]; do sleep 0.1; done; "
    f'KAFKA_ADVERTISED_LISTENERS="$(cat {_ADVERTISED_FILE})"; export KAFKA_ADVERTISED_LISTENERS; '
    "exec /etc/kafka/docker/run",
]  # fmt: skip


class DockerInfraError(RuntimeError):
    """A container could not be started or reached; the message says which and why."""


@contextlib.contextmanager
def _client() -> Iterator[Any]:
    """testcontainers' client (it resolves DOCKER_HOST, the docker context and ~/.testcontainers.properties)."""
    from testcontainers.core.docker_client import DockerClient

    client = DockerClient().client
    try:
        yield client
    finally:
        client.close()


def _is_podman(version: dict[str, Any]) -> bool:
    """As testcontainers' `is_podman` decides, without its cached client (which it never closes)."""
    platform = str((version.get("Platform") or {}).get("Name", ""))
    components = version.get("Components") or []
    return "podman" in platform.lower() or any("podman" in str(c.get("Name", "")).lower() for c in components)


def _configure_testcontainers() -> None:
    from testcontainers.core.config import ConnectionMode
    from testcontainers.core.config import testcontainers_config as config

    config.ryuk_disabled = True
    if config.connection_mode_override is None:
        with _client() as client:
            if _is_podman(client.version()):
                config.connection_mode_override = ConnectionMode.docker_host


def _containers(client: Any, container_id: str) -> list[Any]:
    """The container with this id, if the engine still has it (a list: no exception type of docker-py to import)."""
    return list(client.containers.list(all=True, filters={"id": container_id}))


def _running(container_id: str | None) -> bool:
    if not container_id:
        return False
    with _client() as client:
        return any(c.status == "running" for c in _containers(client, container_id))


def active(state: State) -> bool:
    return bool(state.docker.postgres_container or state.docker.kafka_container)


def _host(container: Any) -> str:
    host = str(container.get_container_host_ip())
    return "127.0.0.1" if host == "localhost" else host  # IPv4, like the devstack's own servers


def _start_postgres() -> tuple[str, str]:
    from testcontainers.community.postgres import PostgresContainer

    pg: Any = PostgresContainer(
        images.POSTGRES_IMAGE,
        username="postgres",
        password="postgres",  # noqa: S106 - throwaway local test container
        dbname="postgres",
        driver="asyncpg",
    ).with_command("postgres -c max_connections=300 -c shared_buffers=256MB")
    try:
        pg.start()
        found = pg.get_container_id(), pg.get_connection_url(host=_host(pg))
    except BaseException:
        pg.stop()  # testcontainers leaves a container that failed its readiness check behind
        raise
    pg.get_docker_client().client.close()  # the container outlives this object; its connection does not
    return found


def _put_file(container: Any, path: str, content: str) -> None:
    data = content.encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
    if not container.get_wrapped_container().put_archive("/", archive.getvalue()):
        raise DockerInfraError(f"could not copy {path} into the Kafka container")


def _start_kafka() -> tuple[str, str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    kf: Any = DockerContainer(images.kafka_image(), env=dict(KAFKA_ENV))
    kf.with_command(_KAFKA_COMMAND).with_exposed_ports(_EXTERNAL_PORT)
    kf.start()
    try:
        bootstrap = f"{_host(kf)}:{kf.get_exposed_port(_EXTERNAL_PORT)}"
        _put_file(kf, _ADVERTISED_FILE, f"PLAINTEXT://localhost:9092,EXTERNAL://{bootstrap}")
        started = LogMessageWaitStrategy("Kafka Server started")
        started.with_startup_timeout(int(KAFKA_READY_DEADLINE_S)).wait_until_ready(kf)
        kafka.wait_kafka(bootstrap, deadline_s=KAFKA_READY_DEADLINE_S)
    except BaseException:
        kf.stop()
        raise
    kf.get_docker_client().client.close()
    return kf.get_container_id(), bootstrap


def ensure(state: State, *, need_pg: bool, need_kafka: bool) -> tuple[str, str]:
    """Start what `state` does not show running; returns (postgres asyncpg URL, kafka bootstrap)."""
    _configure_testcontainers()
    docker = state.docker
    try:
        if need_pg and not _running(docker.postgres_container):
            docker.postgres_container, docker.postgres_url = _start_postgres()
        if need_kafka and not _running(docker.kafka_container):
            docker.kafka_container, docker.kafka_bootstrap = _start_kafka()
    except (OSError, TimeoutError, kafka.KafkaError) as err:
        raise DockerInfraError(f"testcontainers could not start PostgreSQL/Kafka: {err!r}") from err
    return docker.postgres_url or "", docker.kafka_bootstrap or ""


def stop(state: State) -> list[str]:
    stopped = []
    with _client() as client:
        for name, cid in (("kafka", state.docker.kafka_container), ("postgres", state.docker.postgres_container)):
            if cid:
                for container in _containers(client, cid):
                    container.remove(force=True, v=True)
                stopped.append(f"{name} (container {cid[:12]})")
    state.docker = DockerState()
    return stopped
