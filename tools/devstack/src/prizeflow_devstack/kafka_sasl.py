"""A dedicated single-node KRaft broker that authenticates and authorizes, for tests of Kafka security.

It runs from the devstack's cached Kafka jars (`ensure_jars`) in a directory of its own, on free ports, and never
touches the shared devstack broker. Its client listener is SASL_PLAINTEXT with SCRAM-SHA-512 only; ACLs are
enforced (KRaft's StandardAuthorizer, `allow.everyone.if.no.acl.found=false`) with `admin` the only super user.
SCRAM users are created when the storage is formatted (`--add-scram`); the controller listener uses SASL/PLAIN for
`admin` (KRaft controllers cannot authenticate with SCRAM: its credentials live in the metadata they serve).
ACLs are added by `create_acls` (aiokafka's admin client has no ACL call; the protocol request is the same).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prizeflow_devstack.kafka import KafkaError, _cluster_id, ensure_jars, jvm_command
from prizeflow_devstack.ports import HOST, pick_free_port, tcp_answers
from prizeflow_devstack.procs import pid_alive, run_sync, spawn_detached, tail, terminate

ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
_HEAP = "-Xmx384m"

# Kafka's protocol codes (org.apache.kafka.common.acl / resource)
RESOURCE_TYPES = {"topic": 2, "group": 3, "cluster": 4}
OPERATIONS = {"Read": 3, "Write": 4, "Create": 5, "Delete": 6, "Alter": 7, "Describe": 8, "IdempotentWrite": 12}
_LITERAL = 3
_ALLOW = 3


@dataclass(frozen=True)
class Acl:
    """Allow `principal` (a user name) these operations on one literal resource."""

    user: str
    resource_type: str
    resource: str
    operations: Sequence[str]


@dataclass
class SaslKafka:
    """A running broker: its bootstrap address and the users (name → password) formatted into it."""

    bootstrap: str
    users: Mapping[str, str]
    directory: Path
    pid: int
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "server.log"

    def client_options(self, user: str, password: str | None = None) -> dict[str, object]:
        """aiokafka options to connect as `user` (with its own password unless another is given)."""
        return {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.users[user] if password is None else password,
        }

    def log_tail(self) -> str:
        return f"--- tail of {self.log} ---\n{tail(self.log)}\n--- stdout ---\n{tail(self.directory / 'stdout.log')}"


def _config(directory: Path, port: int, controller_port: int, admin_password: str) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{controller_port}",
            f"listeners=SASL_PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            f"advertised.listeners=SASL_PLAINTEXT://{HOST}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=SASL_PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            f"sasl.enabled.mechanisms={MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            "listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule "
            f'required username="{ADMIN}" password="{admin_password}" user_{ADMIN}="{admin_password}";',
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule "
            f'required username="{ADMIN}" password="{admin_password}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN}",
            "allow.everyone.if.no.acl.found=false",
            f"log.dirs={directory / 'data'}",
            "num.partitions=1",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "num.network.threads=2",
            "num.io.threads=2",
            "",
        ]
    )


def _log4j(directory: Path) -> Path:
    path = directory / "log4j2.properties"
    path.write_text(
        "status = warn\n"
        "appender.file.type = File\n"
        "appender.file.name = FILE\n"
        f"appender.file.fileName = {directory / 'server.log'}\n"
        "appender.file.layout.type = PatternLayout\n"
        "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
        "rootLogger.level = INFO\n"
        "rootLogger.appenderRef.file.ref = FILE\n",
        encoding="utf-8",
    )
    return path


def start_sasl_kafka(directory: Path, users: Mapping[str, str], *, deadline_s: float = 60.0) -> SaslKafka:
    """Format and start the broker in `directory` (empty or new) with these SCRAM users (`admin` among them)."""
    if ADMIN not in users:
        raise ValueError(f"users must include {ADMIN!r}, the super user")
    directory.mkdir(parents=True, exist_ok=True)
    libs = ensure_jars()
    port = pick_free_port()
    controller_port = pick_free_port(exclude={port})
    config = directory / "server.properties"
    config.write_text(_config(directory, port, controller_port, users[ADMIN]), encoding="utf-8")
    java = jvm_command(libs, log4j=_log4j(directory), logs_dir=directory, heap=_HEAP)
    scram = [arg for name, pw in users.items() for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")]
    formatted = subprocess.run(
        [*java, "kafka.tools.StorageTool", "format", "--config", str(config), "--cluster-id", _cluster_id(), *scram],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if formatted.returncode != 0:
        raise KafkaError(f"kafka storage format failed (exit {formatted.returncode}):\n{formatted.stderr[-3000:]}")
    with (directory / "stdout.log").open("ab") as out:
        pid = spawn_detached(
            [*java, "kafka.Kafka", str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    broker = SaslKafka(f"{HOST}:{port}", dict(users), directory, pid)
    try:
        _wait_ready(broker, deadline_s)
    except BaseException:
        terminate(pid, group=True, grace=5.0)
        raise
    return broker


def _wait_ready(broker: SaslKafka, deadline_s: float) -> None:
    """Until the admin user completes a metadata round trip (the broker authenticates and has registered)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=broker.bootstrap, request_timeout_ms=5_000, **broker.client_options(ADMIN)
        )
        await admin.start()
        try:
            await admin.describe_cluster()
        finally:
            await admin.close()

    deadline = time.monotonic() + deadline_s
    while True:
        if not pid_alive(broker.pid):
            raise KafkaError(f"the SASL test broker exited during start-up\n{broker.log_tail()}")
        try:
            if not tcp_answers(int(broker.bootstrap.rpartition(":")[2])):
                raise ConnectionRefusedError(broker.bootstrap)  # not listening yet: no client noise in the logs
            run_sync(probe)
        except Exception as err:  # any failure means "not ready yet", until the deadline
            if time.monotonic() > deadline:
                raise KafkaError(f"SASL test broker not ready within {deadline_s:.0f}s\n{broker.log_tail()}") from err
            time.sleep(0.5)
        else:
            return


async def create_acls(broker: SaslKafka, acls: Sequence[Acl]) -> None:
    """Add ALLOW ACLs as the super user (Kafka's CreateAcls request, what `kafka-acls --add` sends)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.protocol.admin import CreateAclsRequest

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, **broker.client_options(ADMIN))
    await admin.start()
    try:
        for acl in acls:
            for operation in acl.operations:
                request = CreateAclsRequest(
                    RESOURCE_TYPES[acl.resource_type],
                    acl.resource,
                    _LITERAL,
                    f"User:{acl.user}",
                    "*",
                    OPERATIONS[operation],
                    _ALLOW,
                )
                response = await admin._send_request(request)
                errors = [(code, message) for code, message in response.creation_responses if code != 0]
                if errors:
                    raise KafkaError(f"CreateAcls {acl} {operation}: {errors}")
    finally:
        await admin.close()


@contextlib.contextmanager
def sasl_kafka(directory: Path, users: Mapping[str, str], *, deadline_s: float = 60.0) -> Iterator[SaslKafka]:
    """A broker for the duration of the block; stopped (SIGTERM, then SIGKILL) on the way out."""
    broker = start_sasl_kafka(directory, users, deadline_s=deadline_s)
    try:
        yield broker
    finally:
        terminate(broker.pid, group=True, grace=10.0)
