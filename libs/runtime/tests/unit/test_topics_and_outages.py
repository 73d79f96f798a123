"""Topic plan and the topics a service verifies; readiness and API answers while a dependency is down."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError
from litestar import get
from litestar.testing import AsyncTestClient
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError

from prizeflow_contracts.topics import ALL_TOPICS, AUDIT, GAME_ROUNDS, SETTLEMENT_ROUNDS
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.http import NotReady, create_app
from prizeflow_runtime.service import ServiceRuntime
from prizeflow_runtime.settings import ServiceSettings, TopicSettings
from prizeflow_runtime.topics import TopicProblem, TopicsNotReadyError, required_topics, topic_plan

IDENTITY = DevIdentity.generate()
AUDIENCE = "prizeflow-unit"


def test_every_contract_topic_is_planned_with_a_dlq_of_the_same_partitions() -> None:
    plan = {s.name: s for s in topic_plan(TopicSettings(), suffix=".e2e1")}
    assert len(plan) == 2 * len(ALL_TOPICS)
    for topic in ALL_TOPICS:
        main, dlq = plan[topic.name + ".e2e1"], plan[topic.name + ".e2e1.dlq"]
        assert main.partitions == dlq.partitions == topic.partitions  # DLQs used to get 1
        assert main.replication_factor == dlq.replication_factor == 1
        day = str(86_400_000)  # segment.ms: a record outlives retention.ms by at most a day (ADR 0008)
        assert main.config == {"min.insync.replicas": "1", "retention.ms": str(7 * 86_400_000), "segment.ms": day}
        assert dlq.config == {"min.insync.replicas": "1", "retention.ms": str(28 * 86_400_000), "segment.ms": day}


def test_topic_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "KAFKA_TOPIC_PARTITIONS": "12",
        "KAFKA_TOPIC_REPLICATION_FACTOR": "3",
        "KAFKA_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "KAFKA_TOPIC_RETENTION_MS": "3600000",
        "KAFKA_TOPIC_DLQ_RETENTION_MS": "-1",
    }.items():
        monkeypatch.setenv(name, value)
    spec = {s.name: s for s in topic_plan(ServiceSettings().kafka_topics)}
    assert (spec[GAME_ROUNDS.name].partitions, spec[GAME_ROUNDS.dlq].partitions) == (12, 12)
    assert spec[GAME_ROUNDS.name].replication_factor == 3
    assert spec[GAME_ROUNDS.name].config == {
        "min.insync.replicas": "2",
        "retention.ms": "3600000",
        "segment.ms": "3600000",  # never longer than the retention
    }
    assert spec[GAME_ROUNDS.dlq].config["retention.ms"] == "-1"
    assert spec[GAME_ROUNDS.dlq].config["segment.ms"] == "86400000"


def test_more_in_sync_replicas_than_replicas_is_refused() -> None:
    with pytest.raises(ValidationError, match="MIN_INSYNC_REPLICAS"):
        TopicSettings(replication_factor=1, min_insync_replicas=2)


def test_a_service_verifies_what_it_consumes_with_dlqs_what_it_produces_and_the_audit_topic() -> None:
    rt = ServiceRuntime(ServiceSettings(kafka_topic_suffix=".t1", database_url="postgresql://x@127.0.0.1:1/x"))

    async def handler(*_: Any) -> None:
        return None

    rt.add_consumer("c", [GAME_ROUNDS.name], handler=handler)
    rt.add_consumer("d", ["prizeflow.tests.own.v1"], handler=handler)
    rt.produces([SETTLEMENT_ROUNDS.name])
    rt.http_app()  # serves /admin/dead-letters, whose redrive and discard are audited
    assert rt.required_topics() == {
        "prizeflow.game.rounds.v1.t1": 6,
        "prizeflow.game.rounds.v1.t1.dlq": 6,
        "prizeflow.tests.own.v1.t1": 1,  # outside the contracts: it only has to exist
        "prizeflow.tests.own.v1.t1.dlq": 1,
        "prizeflow.settlement.rounds.v1.t1": 6,
        "prizeflow.audit.v1.t1": 6,
    }
    assert required_topics([AUDIT.name], TopicSettings(partitions=2)) == {"prizeflow.audit.v1": 2}


def test_missing_and_short_topics_are_named_in_one_line() -> None:
    error = TopicsNotReadyError([TopicProblem("a.v1", 6, None), TopicProblem("b.v1", 6, 3)])
    assert str(error) == "topics not provisioned: a.v1 missing; b.v1 has 3 partitions, expected 6"


async def test_readiness_names_what_is_missing_and_never_shows_internal_exception_text() -> None:
    async def database_ready() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connect call failed 10.1.2.3:5432"))

    async def startup_ready() -> None:
        raise NotReady("topics not provisioned: prizeflow.audit.v1 missing")

    app = create_app(service_name="unit", registry=CollectorRegistry(), readiness=[database_ready, startup_ready])
    async with AsyncTestClient(app) as client:
        response = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert live.status_code == 200
    assert response.status_code == 503
    assert response.json()["failures"] == [
        "database_ready: unavailable",
        "startup_ready: topics not provisioned: prizeflow.audit.v1 missing",
    ]
    assert "10.1.2.3" not in response.text
    assert "Connect call failed" not in response.text


def _raising(exc: BaseException) -> Any:
    @get("/thing", sync_to_thread=False)
    def thing() -> None:
        raise exc

    return create_app(
        service_name="unit",
        route_handlers=[thing],
        registry=CollectorRegistry(),
        auth=IDENTITY.verifier(audience=AUDIENCE),
    )


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        OperationalError("SELECT player_id FROM wallets", {"p": "alice"}, ConnectionRefusedError(111, "refused")),
        KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]"),
        TimeoutError(),
    ],
    ids=["os-error", "sqlalchemy-wrapped", "kafka", "timeout"],
)
async def test_an_unreachable_database_or_broker_is_a_503_problem_with_retry_after(exc: BaseException) -> None:
    headers = {"Authorization": f"Bearer {IDENTITY.issue('u-1', ['admin'], audience=AUDIENCE)}"}
    async with AsyncTestClient(_raising(exc)) as client:
        response = await client.get("/thing", headers=headers)
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"] == "5"
    problem = response.json()
    assert (problem["status"], problem["code"], problem["instance"]) == (503, "service_unavailable", "/thing")
    assert "alice" not in response.text
    assert "wallets" not in response.text


async def test_a_database_error_that_is_not_an_outage_stays_a_500() -> None:
    headers = {"Authorization": f"Bearer {IDENTITY.issue('u-1', ['admin'], audience=AUDIENCE)}"}
    exc = IntegrityError("INSERT", {}, Exception("duplicate key"))
    async with AsyncTestClient(_raising(exc)) as client:
        response = await client.get("/thing", headers=headers)
    assert response.status_code == 500
    assert "retry-after" not in response.headers


async def test_readiness_of_a_runtime_says_what_it_waits_for_before_and_after_start() -> None:
    rt = ServiceRuntime(ServiceSettings(database_url="postgresql://x@127.0.0.1:1/x"))
    with pytest.raises(NotReady, match=r"^starting$"):
        await rt.startup_ready()
    with pytest.raises(NotReady, match=r"^not connected$"):
        await rt.kafka_ready()

    class LostBroker:
        async def fetch_all_metadata(self) -> None:
            raise KafkaError("Unable to get cluster metadata over all known brokers")

    rt._producer = SimpleNamespace(client=LostBroker())  # a started producer whose broker is gone
    with pytest.raises(NotReady, match=r"^unreachable$"):
        await rt.kafka_ready()
    await rt.engine.dispose()
