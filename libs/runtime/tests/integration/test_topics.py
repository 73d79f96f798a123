"""Topic provisioning on real Kafka: what it creates, that it is idempotent, that short topics are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from prizeflow_contracts.topics import ALL_TOPICS, GAME_ROUNDS
from prizeflow_devstack.ports import pick_free_port
from prizeflow_runtime.settings import TopicSettings
from prizeflow_runtime.topics import (
    TopicProblem,
    check_topics,
    delete_topics_with_suffix,
    provision_topics,
    topic_plan,
)

pytestmark = pytest.mark.integration


async def _describe(bootstrap: str, suffix: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.endswith((suffix, suffix + ".dlq"))]
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(mine)} if mine else {}
    finally:
        await admin.close()


async def _configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [(_, _, _, _, entries)] = response.resources
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await admin.close()


async def _create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def test_provisioning_creates_every_topic_and_a_dlq_as_wide_and_a_second_run_changes_nothing(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    settings = TopicSettings(retention_ms=3_600_000, dlq_retention_ms=7_200_000)
    plan = topic_plan(settings, suffix=topic_suffix)
    first = await provision_topics(kafka_bootstrap, plan)
    assert sorted(first.created) == sorted(s.name for s in plan)
    assert first.ok
    assert not first.present
    expected = {}
    for topic in ALL_TOPICS:
        expected[topic.name + topic_suffix] = expected[topic.name + topic_suffix + ".dlq"] = topic.partitions
    assert await _describe(kafka_bootstrap, topic_suffix) == expected
    audit = await _configs(kafka_bootstrap, "prizeflow.audit.v1" + topic_suffix)
    assert (audit["min.insync.replicas"], audit["retention.ms"]) == ("1", "3600000")
    assert (await _configs(kafka_bootstrap, "prizeflow.audit.v1" + topic_suffix + ".dlq"))["retention.ms"] == "7200000"

    second = await provision_topics(kafka_bootstrap, plan)
    assert (second.created, second.increased, second.short) == ([], [], [])
    assert sorted(second.present) == sorted(s.name for s in plan)
    assert await check_topics(kafka_bootstrap, {s.name: s.partitions for s in plan}) == []


async def test_a_short_topic_is_reported_never_accepted_and_grown_only_when_asked(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    rounds = GAME_ROUNDS.name + topic_suffix
    await _create(kafka_bootstrap, rounds, 2)  # e.g. auto-created by a producer with the broker's defaults
    plan = topic_plan(TopicSettings(), suffix=topic_suffix, topics=[GAME_ROUNDS])

    report = await provision_topics(kafka_bootstrap, plan)
    assert report.short == [TopicProblem(rounds, 6, 2)]
    assert not report.ok
    assert report.created == [rounds + ".dlq"]
    assert (await _describe(kafka_bootstrap, topic_suffix))[rounds] == 2
    assert await check_topics(kafka_bootstrap, {rounds: 6, rounds + ".missing": 1}) == [
        TopicProblem(rounds, 6, 2),
        TopicProblem(rounds + ".missing", 1, None),
    ]

    grown = await provision_topics(kafka_bootstrap, plan, increase_partitions=True)
    assert grown.increased == [TopicProblem(rounds, 6, 2)]
    assert grown.ok
    assert await _describe(kafka_bootstrap, topic_suffix) == {rounds: 6, rounds + ".dlq": 6}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prizeflow_runtime.topics", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_the_ops_entrypoint_provisions_checks_and_fails_on_a_short_topic(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    # One partition per topic, then two: the same paths as the contracts' counts at a fraction of the broker's work.
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_SUFFIX": topic_suffix,
        "KAFKA_TOPIC_PARTITIONS": "1",
    }
    missing = await asyncio.to_thread(_cli, "check", env=env)
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert f"PROBLEM  prizeflow.audit.v1{topic_suffix} missing" in missing.stdout

    created = await asyncio.to_thread(_cli, "provision", env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert created.stdout.count("created  ") == 2 * len(ALL_TOPICS)
    again = await asyncio.to_thread(_cli, "provision", env=env)
    assert (again.returncode, again.stdout.count("present  ")) == (0, 2 * len(ALL_TOPICS))

    wider: dict[str, Any] = {**env, "KAFKA_TOPIC_PARTITIONS": "2"}  # the deployment now wants 2 partitions
    short = await asyncio.to_thread(_cli, "provision", env=wider)
    assert short.returncode == 1
    assert f"SHORT    prizeflow.audit.v1{topic_suffix} has 1 partitions, expected 2" in short.stdout
    grown = await asyncio.to_thread(_cli, "provision", "--increase-partitions", env=wider)
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert grown.stdout.count("increased ") == 2 * len(ALL_TOPICS)
    assert (await asyncio.to_thread(_cli, "check", env=wider)).returncode == 0


async def test_the_ops_entrypoint_exits_2_when_kafka_does_not_answer() -> None:
    result = await asyncio.to_thread(_cli, "provision", "--bootstrap", f"127.0.0.1:{pick_free_port()}", env={})
    assert result.returncode == 2
    assert "Kafka did not answer" in result.stderr


async def test_deleting_by_suffix_removes_only_that_suffix_and_refuses_a_broad_one(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    await provision_topics(kafka_bootstrap, topic_plan(TopicSettings(), suffix=topic_suffix, topics=[GAME_ROUNDS]))
    deleted = await delete_topics_with_suffix(kafka_bootstrap, topic_suffix)
    assert deleted == [GAME_ROUNDS.name + topic_suffix, GAME_ROUNDS.name + topic_suffix + ".dlq"]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # returned only once the broker no longer lists them
        assert not [t for t in await admin.list_topics() if topic_suffix in t]
    finally:
        await admin.close()
    for broad in ("", ".v1", ".dlq"):
        with pytest.raises(ValueError, match="too broad"):
            await delete_topics_with_suffix(kafka_bootstrap, broad)
