"""`prizeflow-dev topics` and the `topic_suffix` fixture, on the real Kafka the devstack provides."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from prizeflow_contracts.topics import ALL_TOPICS, AUDIT, GAME_ROUNDS
from prizeflow_devstack.infra import Infra
from prizeflow_devstack.paths import find_root
from prizeflow_devstack.platform import Platform

pytestmark = pytest.mark.integration

PRIZEFLOW_DEV = str(Path(sys.executable).with_name("prizeflow-dev"))


async def _topics(bootstrap: str, suffix: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.endswith((suffix, suffix + ".dlq"))]
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(mine)} if mine else {}
    finally:
        await admin.close()


def _dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PRIZEFLOW_DEV, *args], capture_output=True, text=True, check=False, timeout=180)


async def test_topics_command_provisions_once_and_refuses_a_short_topic_unless_asked_to_grow_it(
    kafka_bootstrap: str, topic_suffix: str
) -> None:
    audit = AUDIT.name + topic_suffix
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(audit, 3, 1)])  # as a producer on an auto-creating broker leaves it
    finally:
        await admin.close()

    short = await asyncio.to_thread(_dev, "topics", "--suffix", topic_suffix)
    assert short.returncode == 1, short.stdout + short.stderr
    assert f"SHORT    {audit} has 3 partitions, expected 6" in short.stdout
    assert f"{2 * len(ALL_TOPICS) - 1} created, 0 present, 0 increased, 1 short" in short.stdout

    grown = await asyncio.to_thread(_dev, "topics", "--suffix", topic_suffix, "--increase-partitions")
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert f"0 created, {2 * len(ALL_TOPICS) - 1} present, 1 increased, 0 short" in grown.stdout

    again = await asyncio.to_thread(_dev, "topics", "--suffix", topic_suffix)
    assert again.returncode == 0
    assert f"0 created, {2 * len(ALL_TOPICS)} present, 0 increased, 0 short" in again.stdout
    expected = {}
    for topic in ALL_TOPICS:
        expected[topic.name + topic_suffix] = expected[topic.name + topic_suffix + ".dlq"] = topic.partitions
    assert await _topics(kafka_bootstrap, topic_suffix) == expected


async def test_the_topic_suffix_fixture_deletes_the_topics_a_test_created(kafka_bootstrap: str, tmp_path: Path) -> None:
    """A test session of its own, so the fixture's teardown has run when we look. It runs as CI runs (teardown
    requested): a nested session did not start the infrastructure, so it must leave it running for ours."""
    (tmp_path / "test_creates.py").write_text(
        textwrap.dedent(
            """
            import os
            from pathlib import Path

            from prizeflow_devstack.procs import run_sync
            from prizeflow_testkit import provision_test_topics
            from prizeflow_runtime.topics import ensure_topics


            def test_creates(kafka_bootstrap: str, topic_suffix: str) -> None:
                run_sync(lambda: provision_test_topics(kafka_bootstrap, topic_suffix))
                run_sync(lambda: ensure_topics(kafka_bootstrap, ["prizeflow.own.thing.v1" + topic_suffix]))
                Path(os.environ["SUFFIX_FILE"]).write_text(topic_suffix)
            """
        )
    )
    suffix_file = tmp_path / "suffix"
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_creates.py")],
        cwd=tmp_path,
        env={**os.environ, "CI": "true", "SUFFIX_FILE": str(suffix_file), "PRIZEFLOW_ROOT": str(find_root())},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    suffix = suffix_file.read_text()
    assert suffix.startswith(".t")
    assert await _topics(kafka_bootstrap, suffix) == {}  # 18 contract topics + 2 of its own, all gone


async def test_a_platform_provisions_its_topics_before_its_services_start_and_deletes_them_at_stop(
    infra: Infra, kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = Platform(infra, tmp_path / "platform", services=("settlement",))
    try:
        await asyncio.to_thread(platform.start)  # settlement only becomes ready once its topics are there
        topics = await _topics(kafka_bootstrap, platform.suffix)
        assert len(topics) == 2 * len(ALL_TOPICS)
        assert topics[GAME_ROUNDS.name + platform.suffix + ".dlq"] == GAME_ROUNDS.partitions
    finally:
        await asyncio.to_thread(platform.stop)
    assert await _topics(kafka_bootstrap, platform.suffix) == {}
