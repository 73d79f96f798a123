"""Real PostgreSQL + Kafka for dev and tests: external (env), local binaries, or testcontainers (Docker, asked for)."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prizeflow_devstack import docker_infra, kafka, postgres, prometheus
from prizeflow_devstack.paths import Paths, resolve_root
from prizeflow_devstack.ports import HOST
from prizeflow_devstack.procs import pid_alive, run_sync
from prizeflow_devstack.state import State, load_state, locked, save_state

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
PG_READY_DEADLINE_S = 30.0
KAFKA_READY_DEADLINE_S = 90.0


class InfraError(RuntimeError):
    """Infrastructure is missing or unreachable. Tests must error on it, never skip."""


@dataclass(frozen=True)
class Infra:
    """Where PostgreSQL and Kafka answer. `managed`: the devstack provisioned both (nothing came from env).
    `started`: this call started them (they were not running before), so only its caller may stop them."""

    postgres_url: str
    kafka_bootstrap: str
    managed: bool
    started: bool = False

    def database_url(self, name: str) -> str:
        """Same server, another database (SQLAlchemy asyncpg form)."""
        return with_database(self.postgres_url, name)

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.postgres_url, "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    address: str | None
    pid: int | None = None
    log: Path | None = None
    detail: str = ""


@dataclass(frozen=True)
class StackStatus:
    root: Path
    postgres: ComponentStatus
    kafka: ComponentStatus
    prometheus: ComponentStatus
    external: dict[str, str] = field(default_factory=dict)


def to_asyncpg_url(url: str) -> str:
    """Any postgres URL → `postgresql+asyncpg://...` (what SQLAlchemy async wants)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"}:
        raise InfraError(f"not a PostgreSQL URL: {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def asyncpg_dsn(url: str) -> str:
    """The plain `postgresql://` DSN asyncpg.connect() accepts."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _own_url(url: str, port: int | None) -> bool:
    """An env URL that points at our own managed server (e.g. exported by `prizeflow-dev env`)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    return port is not None and parts.hostname in {HOST, "localhost"} and parts.port == port


def _own_bootstrap(bootstrap: str, port: int | None) -> bool:
    return all(_own_url(server.strip(), port) for server in bootstrap.split(","))


def _asyncpg() -> Any:
    """asyncpg ships no type information; keep it `Any` in one place, imported lazily."""
    return importlib.import_module("asyncpg")


async def _pg_select_one(url: str, connect_timeout: float) -> None:
    conn = await _asyncpg().connect(asyncpg_dsn(url), timeout=connect_timeout)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()


def wait_postgres(url: str, deadline_s: float = PG_READY_DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            run_sync(lambda: _pg_select_one(url, 3.0))
        except Exception as err:  # noqa: BLE001 - retried until the deadline, then reported
            last = err
            time.sleep(0.3)
        else:
            return
    raise InfraError(f"PostgreSQL at {url} did not answer within {deadline_s:.0f}s: {last!r}")


# Where the devstack's own PostgreSQL and Kafka come from: `local` (the default) or `docker` (testcontainers).
INFRA_SOURCE_ENV = "PRIZEFLOW_DEVSTACK_INFRA"
INFRA_SOURCES = ("local", "docker")


def infra_source() -> str:
    """`local` (the binaries under `.devstack/`) unless `PRIZEFLOW_DEVSTACK_INFRA=docker` asks for testcontainers.

    A Docker engine that merely answers is no reason to switch: the images testcontainers runs may not be pullable
    (no registry here), and `make test` must keep the infrastructure it started when the container tier starts a
    dockerd beside it. An unknown value fails rather than picking one."""
    value = os.environ.get(INFRA_SOURCE_ENV, "").strip() or "local"
    if value not in INFRA_SOURCES:
        raise InfraError(f"{INFRA_SOURCE_ENV}={value!r}: expected one of {', '.join(INFRA_SOURCES)}")
    return value


def _docker_answers() -> bool:
    """A Docker engine that answers quickly (the CLI alone is not enough)."""
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def ensure_infra(root: Path | None = None) -> Infra:
    """Idempotent: reuse what `.devstack/state.json` says runs (after checking), start what does not.

    `DATABASE_URL` / `KAFKA_BOOTSTRAP_SERVERS` (unless they point at our own servers) are used as is; otherwise the
    local binaries, or testcontainers when `PRIZEFLOW_DEVSTACK_INFRA=docker` asks for them (a Docker engine must
    then answer). What already runs is kept whichever was asked for: `prizeflow-dev down` first to switch.
    """
    source = infra_source()
    paths = Paths(resolve_root(root))
    paths.ensure()
    env_pg = os.environ.get("DATABASE_URL")
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with locked(paths):
        state = load_state(paths)
        ext_pg = env_pg if env_pg and not _own_url(env_pg, state.postgres.port) else None
        ext_kafka = env_kafka if env_kafka and not _own_bootstrap(env_kafka, state.kafka.port) else None
        was_running = docker_infra.active(state) or (
            postgres.running_postmaster(paths) is not None and kafka.broker_pid(paths, state) is not None
        )
        docker = docker_infra.active(state) or (
            (ext_pg is None or ext_kafka is None) and not _local_running(paths, state) and source == "docker"
        )
        if docker and not docker_infra.active(state) and not _docker_answers():
            raise InfraError(
                f"{INFRA_SOURCE_ENV}=docker, but no Docker engine answers `docker info` (DOCKER_HOST, or the docker "
                "context): start one, or unset it to use the local binaries"
            )
        try:
            if docker:
                pg_url, bootstrap = docker_infra.ensure(state, need_pg=ext_pg is None, need_kafka=ext_kafka is None)
                pg_url, bootstrap = ext_pg or pg_url, ext_kafka or bootstrap
                save_state(paths, state)
            else:
                pg_url, bootstrap = _ensure_local(paths, state, ext_pg, ext_kafka)
        except (postgres.PostgresError, kafka.KafkaError, docker_infra.DockerInfraError) as err:
            raise InfraError(str(err)) from err
    pg_url = to_asyncpg_url(pg_url)
    try:
        wait_postgres(pg_url, PG_READY_DEADLINE_S if ext_pg is None else 10.0)
    except InfraError as err:
        source = "DATABASE_URL" if ext_pg else "the devstack PostgreSQL"
        raise InfraError(f"{source} is not reachable: {err}") from err
    if ext_kafka is not None:
        try:
            kafka.wait_kafka(ext_kafka, deadline_s=20.0)
        except kafka.KafkaError as err:
            raise InfraError(f"KAFKA_BOOTSTRAP_SERVERS={ext_kafka} is not reachable: {err}") from err
    managed = ext_pg is None and ext_kafka is None
    return Infra(postgres_url=pg_url, kafka_bootstrap=bootstrap, managed=managed, started=managed and not was_running)


def _local_running(paths: Paths, state: State) -> bool:
    return postgres.running_postmaster(paths) is not None or kafka.broker_pid(paths, state) is not None


def _ensure_local(paths: Paths, state: State, ext_pg: str | None, ext_kafka: str | None) -> tuple[str, str]:
    """PostgreSQL and Kafka start side by side: the broker's JVM warms up while initdb/pg_ctl run."""
    bootstrap = ext_kafka
    started_kafka = False
    if ext_kafka is None:
        bootstrap = kafka.start_kafka(paths, state, deadline_s=KAFKA_READY_DEADLINE_S)
        started_kafka = True
        save_state(paths, state)  # the broker's pid is on disk before we wait (Ctrl-C safe)
    pg_url = ext_pg
    if ext_pg is None:
        pm = postgres.start_postgres(paths, state)
        save_state(paths, state)
        pg_url = f"postgresql+asyncpg://{postgres.PG_USER}@{HOST}:{pm.port}/postgres"
    if started_kafka and bootstrap is not None:
        kafka.wait_kafka(bootstrap, deadline_s=KAFKA_READY_DEADLINE_S, pid=state.kafka.pid, log=paths.kafka_log)
    assert pg_url is not None
    assert bootstrap is not None
    return pg_url, bootstrap


async def create_database(infra: Infra, name: str, *, template: str | None = None) -> str:
    """CREATE DATABASE if missing (a copy of `template` when given: nobody may be connected to it); returns its
    asyncpg URL."""
    asyncpg = _asyncpg()
    for db in (name, template):
        if db is not None and not _DB_NAME.match(db):
            raise InfraError(f"invalid database name {db!r} (lowercase identifier expected)")
    conn = await asyncpg.connect(asyncpg_dsn(infra.postgres_url), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a concurrent caller won the race
                copy = f' TEMPLATE "{template}"' if template is not None else ""
                await conn.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await conn.close()
    return infra.database_url(name)


async def drop_database(infra: Infra, name: str) -> None:
    """DROP DATABASE IF EXISTS ... WITH (FORCE): open sessions are terminated."""
    asyncpg = _asyncpg()
    if not _DB_NAME.match(name):
        raise InfraError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(asyncpg_dsn(infra.postgres_url), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sweep_orphans(infra: Infra, root: Path | None = None) -> list[str]:
    """Drop the databases and topics a killed test session or bench left (`owners`); only on the devstack's own
    servers (a server from the environment is someone else's). What was cleaned."""
    from prizeflow_devstack import owners
    from prizeflow_runtime.topics import delete_topics_with_suffix

    if not infra.managed:
        return []
    return run_sync(
        lambda: owners.sweep(
            drop_database=lambda name: drop_database(infra, name),
            delete_topics=lambda suffix: delete_topics_with_suffix(infra.kafka_bootstrap, suffix),
            root=root,
        )
    )


def stop_infra(root: Path | None = None) -> list[str]:
    """Stop services, Prometheus, then Kafka, then PostgreSQL. Ports and data are kept. Returns what was stopped."""
    from prizeflow_devstack.supervisor import stop_services

    paths = Paths(resolve_root(root))
    stopped: list[str] = []
    with locked(paths):
        stopped.extend(stop_services(paths.root))
        state = load_state(paths)
        try:
            if prometheus.stop_prometheus(paths, state):
                stopped.append("prometheus")
        except prometheus.PrometheusError as err:
            raise InfraError(str(err)) from err
        save_state(paths, state)
        if docker_infra.active(state):
            stopped.extend(docker_infra.stop(state))
        if kafka.broker_pid(paths, state) is not None:
            stopped.append("kafka")
        kafka.stop_kafka(paths, state)
        save_state(paths, state)
        if postgres.running_postmaster(paths) is not None:
            stopped.append("postgres")
        postgres.stop_postgres(paths, state)
        save_state(paths, state)
    return stopped


def restart_postgres(root: Path | None = None) -> None:
    """Fast stop + start on the same port and data (fault injection)."""
    paths = Paths(resolve_root(root))
    with locked(paths):
        state = load_state(paths)
        postgres.stop_postgres(paths, state)
        pm = postgres.start_postgres(paths, state)
        save_state(paths, state)
    wait_postgres(f"postgresql+asyncpg://{postgres.PG_USER}@{HOST}:{pm.port}/postgres")


def restart_kafka(root: Path | None = None) -> None:
    """Controlled shutdown + start on the same ports and log dirs (fault injection). Only this devstack's own
    broker: with none running here (the tests use servers from the environment) it refuses, instead of starting a
    second broker that nobody stops."""
    paths = Paths(resolve_root(root))
    with locked(paths):
        state = load_state(paths)
        running = kafka.broker_pid(paths, state)
        if running is None or not pid_alive(running):
            raise InfraError(f"no Kafka of this devstack ({paths.base}) is running: nothing to restart")
        kafka.stop_kafka(paths, state)
        bootstrap = kafka.start_kafka(paths, state)
        save_state(paths, state)
        kafka.wait_kafka(bootstrap, deadline_s=KAFKA_READY_DEADLINE_S, pid=state.kafka.pid, log=paths.kafka_log)


def status(root: Path | None = None) -> StackStatus:
    paths = Paths(resolve_root(root))
    state = load_state(paths)
    pm = postgres.running_postmaster(paths)
    pg = ComponentStatus(
        name="postgres",
        running=pm is not None,
        address=f"postgresql+asyncpg://{postgres.PG_USER}@{HOST}:{state.postgres.port}/postgres"
        if state.postgres.port
        else None,
        pid=pm.pid if pm else None,
        log=paths.pg_log,
    )
    kpid = kafka.broker_pid(paths, state)
    kf = ComponentStatus(
        name="kafka",
        running=kpid is not None and pid_alive(kpid),
        address=f"{HOST}:{state.kafka.port}" if state.kafka.port else None,
        pid=kpid,
        log=paths.kafka_log,
    )
    ppid = prometheus.running_pid(paths, state)
    prom = ComponentStatus(
        name="prometheus",
        running=ppid is not None,
        address=prometheus.url(state),
        pid=ppid,
        log=paths.prometheus_log,
    )
    external = {k: v for k in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS") if (v := os.environ.get(k))}
    return StackStatus(root=paths.root, postgres=pg, kafka=kf, prometheus=prom, external=external)


def log(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr)
