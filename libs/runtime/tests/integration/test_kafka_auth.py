"""Kafka security for real: a dedicated broker (SASL_PLAINTEXT, SCRAM-SHA-512, ACLs enforced, `admin` the only
super user; never the shared devstack broker) and the runtime's own clients built from `KafkaSecurity` settings.
A service's user with its ACLs produces and consumes through the idempotent producer and the FastStream broker; a
wrong password is refused and reported as such (by the start-up readiness and the topics CLI), never as an outage
and never with the password; a user without ACLs is denied."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import ClusterAuthorizationFailedError, KafkaConnectionError, TopicAuthorizationFailedError
from faststream.kafka.annotations import KafkaMessage

from prizeflow_devstack.kafka_sasl import Acl, SaslKafka, create_acls, sasl_kafka
from prizeflow_runtime.broker import create_broker
from prizeflow_runtime.http import NotReady
from prizeflow_runtime.kafka_security import KafkaAuthenticationError, authentication_problem
from prizeflow_runtime.kafka_settings import KafkaSecurity
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import ServiceSettings
from prizeflow_runtime.topics import TopicSpec, check_topics, provision_topics
from prizeflow_testkit.waits import eventually

pytestmark = pytest.mark.integration

TOPIC = "prizeflow.auth-test.v1"
GROUP = "auth-test"
PASSWORDS = {"admin": "admin-pw-7f3a", "settlement": "settlement-pw-91c2", "intruder": "intruder-pw-5b0e"}
WRONG = "wrong-password-e4d1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslKafka]:
    with sasl_kafka(tmp_path_factory.mktemp("sasl-kafka"), PASSWORDS) as running:
        yield running


@pytest.fixture(scope="module")
async def provisioned(broker: SaslKafka) -> SaslKafka:
    admin = security(broker, "admin")
    report = await provision_topics(
        broker.bootstrap, [TopicSpec(TOPIC, 1), TopicSpec(TOPIC + ".dlq", 1)], security=admin
    )
    assert report.ok
    await create_acls(
        broker,
        [
            Acl("settlement", "topic", TOPIC, ["Read", "Write", "Describe"]),
            Acl("settlement", "topic", TOPIC + ".dlq", ["Write", "Describe"]),
            Acl("settlement", "group", GROUP, ["Read"]),
        ],
    )
    return broker


def security(broker: SaslKafka, user: str, password: str | None = None, *, tmp: Path | None = None) -> KafkaSecurity:
    """Settings as a pod gets them: the password in a file (KAFKA_SASL_PASSWORD_FILE)."""
    directory = tmp or Path(broker.directory)
    password_file = directory / f"{user}-{'wrong' if password else 'right'}.password"
    password_file.write_text(password or broker.users[user])
    return KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=user,
        sasl_password_file=password_file,
    )


async def test_a_service_user_with_its_acls_produces_and_consumes(provisioned: SaslKafka) -> None:
    settlement = security(provisioned, "settlement")
    assert await check_topics(provisioned.bootstrap, {TOPIC: 1, TOPIC + ".dlq": 1}, security=settlement) == []

    producer = idempotent_producer(provisioned.bootstrap, client_id="settlement-producer", security=settlement)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, b'{"n": 1}', key=b"k1")  # idempotent: Write on the topic suffices
    finally:
        await producer.stop()

    received: asyncio.Queue[bytes] = asyncio.Queue()
    broker = create_broker(provisioned.bootstrap, client_id="settlement", security=settlement)

    @broker.subscriber(TOPIC, group_id=GROUP, auto_offset_reset="earliest")
    async def _consume(msg: KafkaMessage) -> None:
        await received.put(msg.body)

    await broker.start()
    try:
        assert await asyncio.wait_for(received.get(), timeout=30) == b'{"n": 1}'
    finally:
        await broker.stop()


async def test_a_wrong_password_is_refused_and_reported_as_such(provisioned: SaslKafka, tmp_path: Path) -> None:
    wrong = security(provisioned, "settlement", WRONG, tmp=tmp_path)
    with pytest.raises(KafkaConnectionError):  # all aiokafka's clients say: no bootstrap
        await check_topics(provisioned.bootstrap, {TOPIC: 1}, security=wrong)
    refusal = await authentication_problem(provisioned.bootstrap, wrong)
    assert isinstance(refusal, KafkaAuthenticationError)
    assert "Kafka refused the credentials (SCRAM-SHA-512 as user 'settlement')" in str(refusal)
    assert "KAFKA_SASL_PASSWORD_FILE" in str(refusal)
    assert WRONG not in str(refusal)
    assert await authentication_problem(provisioned.bootstrap, security(provisioned, "settlement")) is None

    # A service started with it stays not ready, and says why (not "kafka unreachable").
    settings = ServiceSettings(
        prizeflow_profile="dev",
        service_name="settlement",
        kafka_bootstrap_servers=provisioned.bootstrap,
        kafka_security=wrong,
        database_url="postgresql://nobody@127.0.0.1:1/none",
        startup_retry_max_ms=500,
    )
    runtime = ServiceRuntime(settings)
    runtime.add_consumer("auth-test", [TOPIC], handler=_never)
    await runtime.start_in_background()
    try:

        async def waiting_for() -> str:
            try:
                await runtime.startup_ready()
            except NotReady as err:
                return str(err)
            return "ready"

        reason = await eventually(waiting_for, lambda r: "refused the credentials" in r, timeout=30)
        assert "KAFKA_SASL_PASSWORD_FILE" in reason
        assert WRONG not in reason
    finally:
        await runtime.stop()


async def _never(*_: Any) -> None:
    raise AssertionError("nothing is consumed with a refused password")


def test_the_topics_cli_takes_the_same_settings_and_names_a_refusal(provisioned: SaslKafka, tmp_path: Path) -> None:
    wrong = security(provisioned, "settlement", WRONG, tmp=tmp_path)
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": provisioned.bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "settlement",
        "KAFKA_SASL_PASSWORD_FILE": str(wrong.sasl_password_file),
    }
    done = subprocess.run(
        [sys.executable, "-m", "prizeflow_runtime.topics", "check"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prizeflow-topics: Kafka refused the credentials (SCRAM-SHA-512 as user 'settlement')" in done.stderr, (
        done.stderr
    )
    assert WRONG not in done.stdout + done.stderr


async def test_a_user_without_acls_is_denied(provisioned: SaslKafka) -> None:
    intruder = security(provisioned, "intruder")
    # Authenticated, but the broker lists it no topic: to it, the topic does not exist.
    assert [str(p) for p in await check_topics(provisioned.bootstrap, {TOPIC: 1}, security=intruder)] == [
        f"{TOPIC} missing"
    ]
    producer = idempotent_producer(provisioned.bootstrap, client_id="intruder", security=intruder)
    with pytest.raises((TopicAuthorizationFailedError, ClusterAuthorizationFailedError)):
        await producer.start()
        await producer.send_and_wait(TOPIC, b"{}", key=b"k")
    await producer.stop()
