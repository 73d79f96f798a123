"""Apache Kafka (KRaft, single node) from the official Maven Central artifacts, under `.devstack/kafka/`."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from prizeflow_devstack.paths import Paths, cache_dir, find_root
from prizeflow_devstack.ports import HOST, remembered_or_free, tcp_answers
from prizeflow_devstack.procs import pid_alive, pids_matching, run_sync, spawn_detached, start_ticks, tail, terminate
from prizeflow_devstack.state import State

_COMPLETE_MARKER = ".complete"
JVM_HEAP = "-Xmx1g"  # thousands of short-lived test topics accumulate on a long-lived dev broker


class KafkaError(RuntimeError):
    """Kafka could not be provisioned or does not answer; the message carries the broker log tail."""


def pom_path() -> Path:
    """`tools/devstack/kafka/pom.xml`: next to the package source (editable install) or in the repo."""
    candidates = [Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"]
    with contextlib.suppress(RuntimeError):
        candidates.append(find_root() / "tools" / "devstack" / "kafka" / "pom.xml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise KafkaError(f"Kafka pom.xml not found (looked at {', '.join(map(str, candidates))})")


def kafka_version(pom: Path | None = None) -> str:
    """The pom's `<kafka.version>` is the one place the version is pinned."""
    text = (pom or pom_path()).read_text(encoding="utf-8")
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if match is None:
        raise KafkaError("no <kafka.version> property in the Kafka pom.xml")
    return match.group(1).strip()


def java_bin() -> str:
    if java_home := os.environ.get("JAVA_HOME"):
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise KafkaError("`java` not found (need a JDK/JRE 17+ on PATH or JAVA_HOME)")
    return found


def ensure_jars(version: str | None = None) -> Path:
    """Resolve the broker jars once into the cache; a marker file tells a finished download from a torn. `version`:
    another Kafka than the pom's (the cluster's brokers run the version the bundle's `Kafka` asks for)."""
    pom = pom_path()
    version = version or kafka_version(pom)
    home = cache_dir() / f"kafka-{version}"
    libs = home / "libs"
    if (libs / _COMPLETE_MARKER).is_file():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another repo/process may be resolving the same version
        if (libs / _COMPLETE_MARKER).is_file():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaError("`mvn` not found: Maven is needed once to resolve the Kafka jars from Maven Central")
        scratch = home / f"libs.partial-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        print(f"devstack: resolving Apache Kafka {version} jars from Maven Central into {libs}", file=sys.stderr)
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
                f"-DoutputDirectory={scratch}", "-DincludeScope=runtime", f"-Dkafka.version={version}",
            ],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        if result.returncode != 0 or not any(scratch.glob("kafka_2.13-*.jar")):
            shutil.rmtree(scratch, ignore_errors=True)
            raise KafkaError(
                f"maven could not resolve Kafka {version}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        shutil.rmtree(libs, ignore_errors=True)
        scratch.rename(libs)
        (libs / _COMPLETE_MARKER).write_text(f"{version}\n", encoding="utf-8")
    return libs


_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{21}$")


def valid_cluster_id(cluster_id: str) -> bool:
    """A KRaft cluster id `kafka-storage format --cluster-id` accepts: 16 bytes, URL-safe base64 without padding,
    and not starting with `-` (the tool's argument parser would read that as an option and fail the format)."""
    if not _CLUSTER_ID.fullmatch(cluster_id):
        return False
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    return len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id


def _cluster_id() -> str:
    """A random cluster id, drawn again when it starts with `-` (1 in 64 do), as Kafka's own Uuid.randomUuid()."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if valid_cluster_id(cluster_id):
            return cluster_id


def _write_config(paths: Paths, port: int, controller_port: int) -> None:
    paths.kafka_data.mkdir(parents=True, exist_ok=True)
    paths.kafka_config.write_text(
        "# written by prizeflow-devstack at every start\n"
        "process.roles=broker,controller\n"
        "node.id=1\n"
        f"controller.quorum.voters=1@{HOST}:{controller_port}\n"
        f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}\n"
        f"advertised.listeners=PLAINTEXT://{HOST}:{port}\n"
        "controller.listener.names=CONTROLLER\n"
        "inter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
        f"log.dirs={paths.kafka_data}\n"
        "num.partitions=3\n"
        "default.replication.factor=1\n"
        "offsets.topic.replication.factor=1\n"
        "offsets.topic.num.partitions=12\n"
        "transaction.state.log.replication.factor=1\n"
        "transaction.state.log.min.isr=1\n"
        "transaction.state.log.num.partitions=12\n"
        "share.coordinator.state.topic.replication.factor=1\n"
        "share.coordinator.state.topic.min.isr=1\n"
        "group.initial.rebalance.delay.ms=0\n"
        "auto.create.topics.enable=true\n"
        "num.network.threads=2\n"
        "num.io.threads=4\n"
        "log.retention.hours=24\n"
        # A topic without its own segment.ms keeps a record up to retention + roll time (ADR 0008's horizon check).
        "log.roll.hours=24\n",
        encoding="utf-8",
    )
    paths.kafka_log4j.write_text(
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {paths.kafka_log}\n"
        "appender.file.append = true\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = FILE\n"
        "logger.kafka-request.name = kafka.request.logger\n"
        "logger.kafka-request.level = WARN\n"
        "logger.state-change.name = state.change.logger\n"
        "logger.state-change.level = WARN\n",
        encoding="utf-8",
    )


def jvm_command(libs: Path, *, log4j: Path, logs_dir: Path, heap: str) -> list[str]:
    """`java ...` with the Kafka jars on the class path: append a main class and its arguments."""
    return [
        java_bin(),
        heap,
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={logs_dir}",
        "-cp",
        f"{libs}/*",
    ]


def _jvm(libs: Path, paths: Paths, heap: str) -> list[str]:
    return jvm_command(libs, log4j=paths.kafka_log4j, logs_dir=paths.logs, heap=heap)


def _format(libs: Path, paths: Paths, state: State) -> None:
    """Format once; the marker records the cluster id so a torn format is redone from scratch."""
    marker = paths.kafka_formatted_marker
    if marker.is_file() and state.kafka.cluster_id == marker.read_text(encoding="utf-8").strip():
        return
    shutil.rmtree(paths.kafka_data, ignore_errors=True)
    marker.unlink(missing_ok=True)
    paths.kafka_data.mkdir(parents=True)
    cluster_id = _cluster_id()
    result = subprocess.run(
        [
            *_jvm(libs, paths, "-Xmx256m"), "kafka.tools.StorageTool", "format",
            "--config", str(paths.kafka_config), "--cluster-id", cluster_id,
        ],
        capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip
    if result.returncode != 0:
        raise KafkaError(f"kafka storage format failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    state.kafka.cluster_id = cluster_id
    marker.write_text(cluster_id + "\n", encoding="utf-8")


def broker_pid(paths: Paths, state: State) -> int | None:
    """The recorded broker if alive; else any java process started on this repo's config (lost state)."""
    if pid_alive(state.kafka.pid, state.kafka.start_ticks):
        return state.kafka.pid
    orphans = pids_matching(str(paths.kafka_config))
    return orphans[0] if orphans else None


async def _probe(bootstrap: str, request_timeout: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(request_timeout * 1000))
    await admin.start()
    try:
        await admin.describe_cluster()
    finally:
        await admin.close()


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """A metadata round trip succeeds (not just an open port)."""
    try:
        run_sync(lambda: _probe(bootstrap, timeout))
    except Exception:  # noqa: BLE001 - any client failure means "not answering yet"
        return False
    return True


def wait_kafka(bootstrap: str, *, deadline_s: float, pid: int | None = None, log: Path | None = None) -> None:
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if pid is not None and not pid_alive(pid):
            raise KafkaError(f"the Kafka broker (pid {pid}) exited during startup\n{_log_tails(log)}")
        if tcp_answers(int(port), host or HOST) and kafka_answers(bootstrap):
            return
        time.sleep(0.5)
    raise KafkaError(f"Kafka at {bootstrap} did not answer within {deadline_s:.0f}s\n{_log_tails(log)}")


def _log_tails(log: Path | None) -> str:
    if log is None:
        return ""
    stdout = log.with_name("kafka.stdout.log")
    return f"--- tail of {log} ---\n{tail(log)}\n--- tail of {stdout} ---\n{tail(stdout, 15)}"


def start_kafka(paths: Paths, state: State, *, deadline_s: float = 90.0) -> str:
    """Start (resolve jars + format if needed) or adopt the broker; updates `state`; returns the bootstrap."""
    existing = broker_pid(paths, state)
    if existing is not None and state.kafka.port is not None:
        bootstrap = f"{HOST}:{state.kafka.port}"
        state.kafka.pid, state.kafka.start_ticks = existing, start_ticks(existing)
        wait_kafka(bootstrap, deadline_s=deadline_s, pid=existing, log=paths.kafka_log)
        return bootstrap
    if existing is not None:  # a broker we cannot address: replace it
        terminate(existing, group=True, grace=10.0)
    libs = ensure_jars()
    paths.ensure()
    taken = state.used_ports() - {state.kafka.port or -1, state.kafka.controller_port or -1}
    port = remembered_or_free(state.kafka.port, exclude=taken)
    controller_port = remembered_or_free(state.kafka.controller_port, exclude=taken | {port})
    state.kafka.port, state.kafka.controller_port = port, controller_port
    _write_config(paths, port, controller_port)
    _format(libs, paths, state)
    print(f"devstack: starting Kafka on {HOST}:{port} (controller {controller_port})", file=sys.stderr)
    with paths.kafka_stdout.open("ab") as out:
        pid = spawn_detached(
            [*_jvm(libs, paths, JVM_HEAP), "kafka.Kafka", str(paths.kafka_config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=paths.kafka_dir,
        )  # fmt: skip
    state.kafka.pid, state.kafka.start_ticks = pid, start_ticks(pid)
    return f"{HOST}:{port}"


def stop_kafka(paths: Paths, state: State, *, grace: float = 30.0) -> None:
    """SIGTERM (controlled shutdown) then SIGKILL; also catches a broker whose pid the state lost."""
    pids = {p for p in (state.kafka.pid, *pids_matching(str(paths.kafka_config))) if p is not None}
    for pid in pids:
        if pid_alive(pid):
            terminate(pid, group=True, grace=grace)
    state.kafka.pid = None
    state.kafka.start_ticks = None
