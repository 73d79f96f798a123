"""Kafka topics: provisioned by an explicit step, verified by every service at start (ADR 0001, "Topics").

Services never create topics. `python -m prizeflow_runtime.topics provision` (a Kubernetes Job, or
`prizeflow-dev topics` locally) creates every topic of the contracts' table and its `.dlq` sibling with the
same partition count, the configured replication factor, `min.insync.replicas` and retention
(`TopicSettings`, env `KAFKA_TOPIC_*`). It is idempotent: a topic that exists with at least the expected
partitions is left alone; one with fewer is reported and the step fails, unless `--increase-partitions`
asks for the partitions to be added (that moves keys to other partitions: per-key order across the
change is lost, which is why it is never implicit). `check_topics` is what a service runs before it
consumes: what is missing or short keeps it not ready.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from prizeflow_contracts.topics import ALL_TOPICS, DLQ_SUFFIX, Topic, topic_named
from prizeflow_runtime.kafka_security import (
    KafkaAuthenticationError,
    KafkaSecurityError,
    authentication_problem,
    kafka_client_options,
)
from prizeflow_runtime.kafka_settings import KafkaSecurity
from prizeflow_runtime.outbox import physical_topic
from prizeflow_runtime.settings import TopicSettings, settings_or_exit

_TOPIC_ALREADY_EXISTS = 36
_ADMIN_TIMEOUT_MS = 10_000
# How long a just-created or grown topic may take to appear in the metadata a broker serves: it lags the controller,
# by seconds on a loaded broker (a CI lane creating topics beside another that grows hundreds failed at 10 s).
_METADATA_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A physical topic as it should exist on the broker."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopicProblem:
    """A topic that is missing (`actual` None) or has fewer partitions than expected."""

    name: str
    expected: int
    actual: int | None

    def __str__(self) -> str:
        if self.actual is None:
            return f"{self.name} missing"
        return f"{self.name} has {self.actual} partitions, expected {self.expected}"


@dataclass
class ProvisionReport:
    created: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    increased: list[TopicProblem] = field(default_factory=list)
    short: list[TopicProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.short

    def lines(self) -> list[str]:
        out = [f"created  {name}" for name in self.created]
        out += [f"present  {name}" for name in self.present]
        out += [f"increased {p.name}: {p.actual} -> {p.expected} partitions" for p in self.increased]
        out += [f"SHORT    {p} (rerun with --increase-partitions to add them)" for p in self.short]
        return out


class TopicsNotReadyError(RuntimeError):
    """Topics a process needs are missing or short; the message names them and nothing else."""

    def __init__(self, problems: Sequence[TopicProblem]) -> None:
        self.problems = list(problems)
        super().__init__("topics not provisioned: " + "; ".join(map(str, self.problems)))


def expected_partitions(name: str, settings: TopicSettings) -> int:
    """Partitions a contract topic (or its DLQ) must have: the override, else the contract's count. A topic the
    contracts do not list (a test's, the demo's) only has to exist."""
    try:
        contract = topic_named(name)
    except KeyError:
        return 1
    return settings.partitions or contract.partitions


SEGMENT_MS_MAX = 86_400_000  # a day: with the default 7-day retention a record lives at most 8 days


def segment_ms_for(retention_ms: int) -> int:
    """The segment roll time a topic is provisioned with: at most a day, and at most its retention."""
    return SEGMENT_MS_MAX if retention_ms < 0 else max(60_000, min(retention_ms, SEGMENT_MS_MAX))


def topic_plan(
    settings: TopicSettings,
    *,
    suffix: str = "",
    topics: Iterable[Topic] = ALL_TOPICS,
    with_dlq: bool = True,
) -> list[TopicSpec]:
    """Every topic (and its `.dlq`, with the same partitions) under this deployment's suffix."""
    plan: list[TopicSpec] = []
    for topic in topics:
        partitions = settings.partitions or topic.partitions
        names = [(topic.name, settings.retention_ms)]
        if with_dlq:
            names.append((topic.dlq, settings.dlq_retention_ms))
        for name, retention in names:
            config = {
                "min.insync.replicas": str(settings.min_insync_replicas),
                "retention.ms": str(retention),
                # Kafka deletes whole segments once their newest record is past retention.ms, so a record may
                # live retention.ms + segment.ms: short segments keep that close to retention.ms (ADR 0008).
                "segment.ms": str(segment_ms_for(retention)),
            }
            plan.append(TopicSpec(physical_topic(name, suffix), partitions, settings.replication_factor, config))
    return plan


def required_topics(names: Iterable[str], settings: TopicSettings, *, suffix: str = "") -> dict[str, int]:
    """Physical name → expected partitions for contract topic names (DLQ names included as given)."""
    return {physical_topic(name, suffix): expected_partitions(name, settings) for name in names}


def _admin(bootstrap: str, security: KafkaSecurity | None) -> AIOKafkaAdminClient:
    """An admin client connected as `security` says (None: the environment's `KAFKA_*` settings)."""
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="prizeflow-topics",
        request_timeout_ms=_ADMIN_TIMEOUT_MS,
        **kafka_client_options(security if security is not None else KafkaSecurity()),
    )


async def _partition_counts(admin: AIOKafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """Partitions of those of `names` that exist. Only existing topics are described: a metadata request for
    a missing one would create it on a broker with `auto.create.topics.enable`."""
    existing = set(await admin.list_topics())
    wanted = sorted(set(names) & existing)
    if not wanted:
        return {}
    described: list[dict[str, Any]] = await admin.describe_topics(wanted)
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def _described(
    admin: AIOKafkaAdminClient, names: set[str], *, at_least: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Partitions of topics just created or grown (or created concurrently), once the metadata the broker serves
    lists them with at least `at_least` partitions: it lags the controller by a moment."""
    want = at_least or {}
    deadline = asyncio.get_running_loop().time() + _METADATA_WAIT_S
    while True:
        counts = await _partition_counts(admin, names) if names else {}
        lagging = sorted(n for n in names if counts.get(n, 0) < want.get(n, 1))
        if not lagging:
            return counts
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics not described by the broker as created or grown: {lagging}")
        await asyncio.sleep(0.1)


async def check_topics(
    bootstrap: str, expected: Mapping[str, int], *, security: KafkaSecurity | None = None
) -> list[TopicProblem]:
    """What is missing or short. Raises aiokafka's errors when Kafka does not answer. A topic this principal may
    not describe (no ACL) is reported missing: the broker does not list it."""
    admin = _admin(bootstrap, security)
    try:
        await admin.start()
        counts = await _partition_counts(admin, expected)
    finally:
        await admin.close()
    problems = []
    for name, want in sorted(expected.items()):
        have = counts.get(name)
        if have is None or have < want:
            problems.append(TopicProblem(name, want, have))
    return problems


async def topic_retention_ms(
    bootstrap: str, names: Iterable[str], *, security: KafkaSecurity | None = None
) -> dict[str, int]:
    """How long each topic may keep a record, as the broker applies its settings (its own, else the broker's
    defaults): `retention.ms` + `segment.ms`, since Kafka deletes a segment only once its newest record is past
    retention, so its oldest may be a segment's roll time older; -1: for ever. Raises when a topic cannot be
    described: a dedup horizon is not checked against a guess."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    admin = _admin(bootstrap, security)
    try:
        await admin.start()
        keys = {"retention.ms": None, "segment.ms": None}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, configs=dict(keys)) for name in wanted]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    described: dict[str, dict[str, int]] = {}
    for response in responses:
        for error_code, error_message, _type, name, entries in response.resources:
            if error_code != 0:
                raise for_code(error_code)(f"could not describe topic {name}: {error_message}")
            for entry in entries:
                if entry[0] in keys:
                    described.setdefault(name, {})[entry[0]] = int(entry[1])
    missing = [name for name in wanted if set(described.get(name, {})) != set(keys)]
    if missing:
        raise KafkaError(f"the broker did not report retention.ms and segment.ms of {', '.join(missing)}")
    return {
        name: -1 if got["retention.ms"] < 0 else got["retention.ms"] + max(0, got["segment.ms"])
        for name, got in described.items()
    }


async def _grow(admin: AIOKafkaAdminClient, grow: dict[str, NewPartitions]) -> None:
    """Add partitions, then wait until the broker's metadata shows them (it lags the controller by a moment)."""
    response = await admin.create_partitions(grow, timeout_ms=_ADMIN_TIMEOUT_MS)
    for topic, code, *_ in response.topic_errors:
        if code != 0:
            raise for_code(code)(f"could not add partitions to topic {topic}")
    await _described(admin, set(grow), at_least={n: p.total_count for n, p in grow.items()})


async def provision_topics(
    bootstrap: str,
    plan: Sequence[TopicSpec],
    *,
    increase_partitions: bool = False,
    security: KafkaSecurity | None = None,
) -> ProvisionReport:
    """Create what is missing; report (or, asked to, increase) what is short; leave the rest alone."""
    report = ProvisionReport()
    admin = _admin(bootstrap, security)
    try:
        await admin.start()
        counts = await _partition_counts(admin, (s.name for s in plan))
        missing = [s for s in plan if s.name not in counts]
        if missing:
            new = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=dict(s.config)) for s in missing]
            response = await admin.create_topics(new, timeout_ms=_ADMIN_TIMEOUT_MS)
            for topic, code, *_ in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):  # a concurrent provisioner may have won the race
                    raise for_code(code)(f"could not create topic {topic}")
        created = {s.name for s in missing}
        counts = {**counts, **(await _described(admin, created))}
        grow: dict[str, NewPartitions] = {}
        for spec in plan:
            have = counts[spec.name]
            if spec.name in created and have >= spec.partitions:
                report.created.append(spec.name)
            elif have >= spec.partitions:
                report.present.append(spec.name)
            else:
                problem = TopicProblem(spec.name, spec.partitions, have)
                if increase_partitions:
                    grow[spec.name] = NewPartitions(spec.partitions)
                    report.increased.append(problem)
                else:
                    report.short.append(problem)
        if grow:
            await _grow(admin, grow)
    finally:
        await admin.close()
    return report


async def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[Topic | str],
    *,
    with_dlq: bool = True,
    replication_factor: int = 1,
    security: KafkaSecurity | None = None,
) -> None:
    """Tests' and tools' shortcut: create these topics (each DLQ with its topic's partitions) if missing.
    A name rather than a `Topic` gets 3 partitions. Services never call it: they verify (`check_topics`)."""
    plan: list[TopicSpec] = []
    for t in topics:
        name, partitions = (t.name, t.partitions) if isinstance(t, Topic) else (t, 3)
        plan.append(TopicSpec(name, partitions, replication_factor))
        if with_dlq:
            plan.append(TopicSpec(name + DLQ_SUFFIX, partitions, replication_factor))
    await provision_topics(bootstrap_servers, plan, security=security)


async def delete_topics_with_suffix(
    bootstrap: str, suffix: str, *, security: KafkaSecurity | None = None, wait_s: float = 120.0
) -> list[str]:
    """Delete every `*<suffix>` and `*<suffix>.dlq` topic (a test's or an e2e platform's); returns their names once
    the broker no longer lists any of them. A DeleteTopics answer is not that: on a loaded broker it can time out
    per topic (an error code in the answer, not an exception) and metadata lags the controller, so deletion is
    re-requested until the listing is clean, and `TimeoutError` names what is still there after `wait_s`."""
    if not suffix or len(suffix) < 6:
        raise ValueError(f"refusing to delete topics by the suffix {suffix!r}: too broad")

    def _mine(listed: Iterable[str]) -> list[str]:
        return sorted(t for t in listed if t.endswith((suffix, suffix + DLQ_SUFFIX)))

    admin = _admin(bootstrap, security)
    try:
        await admin.start()
        mine = left = _mine(await admin.list_topics())
        deadline = time.monotonic() + wait_s
        while left:
            await admin.delete_topics(left, timeout_ms=_ADMIN_TIMEOUT_MS)
            left = _mine(await admin.list_topics())
            if left and time.monotonic() > deadline:
                raise TimeoutError(f"topics still listed {wait_s:.0f} s after deleting them: {', '.join(left)}")
            if left:
                await asyncio.sleep(0.5)
    finally:
        await admin.close()
    return mine


class ProvisionSettings(BaseSettings):
    """What the provisioning Job reads: the broker, how to connect to it (`KafkaSecurity`, as the services), the
    deployment's suffix and `TopicSettings`. It has no profile (it moves no money, and the compose stack's job sets
    none): PLAINTEXT is accepted here, and refused by every service outside dev."""

    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_suffix: str = Field(default="", pattern=r"^[a-z0-9.\-]*$")
    kafka_topics: TopicSettings = Field(default_factory=TopicSettings)
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m prizeflow_runtime.topics", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    provision = sub.add_parser("provision", help="create missing topics and DLQs; fail on short ones")
    provision.add_argument("--increase-partitions", action="store_true", help="add partitions to short topics")
    sub.add_parser("check", help="exit 1 if a topic is missing or short; change nothing")
    for p in (provision, sub.choices["check"]):
        p.add_argument("--bootstrap", help="default: KAFKA_BOOTSTRAP_SERVERS")
        p.add_argument("--suffix", help="default: KAFKA_TOPIC_SUFFIX")
        p.add_argument(
            "--wait-s",
            type=float,
            default=0.0,
            help="retry while Kafka does not answer, up to this long (a Job or a "
            "compose one-shot started beside a new broker)",
        )
    return parser


async def _main(args: argparse.Namespace, settings: ProvisionSettings) -> int:
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    suffix = settings.kafka_topic_suffix if args.suffix is None else args.suffix
    plan = topic_plan(settings.kafka_topics, suffix=suffix)
    security = settings.kafka_security
    try:
        return await _run(args, bootstrap, plan, security)
    except KafkaError as err:
        refusal = await authentication_problem(bootstrap, security)
        raise (refusal or err) from err


async def _run(args: argparse.Namespace, bootstrap: str, plan: list[TopicSpec], security: KafkaSecurity) -> int:
    if args.command == "check":
        problems = await check_topics(bootstrap, {s.name: s.partitions for s in plan}, security=security)
        for problem in problems:
            print(f"PROBLEM  {problem}")  # noqa: T201 - a CLI's output
        print(f"{len(plan) - len(problems)} of {len(plan)} topics as expected on {bootstrap}")  # noqa: T201
        return 1 if problems else 0
    report = await provision_topics(bootstrap, plan, increase_partitions=args.increase_partitions, security=security)
    for line in report.lines():
        print(line)  # noqa: T201 - a CLI's output
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> None:
    """Exit 0: every topic as expected; 1: some missing (check) or short; 2: Kafka did not answer, refused the
    credentials, or the settings are wrong (named on stderr, never their values)."""
    args = _parser().parse_args(argv)
    settings = settings_or_exit(ProvisionSettings, "prizeflow-topics")
    deadline = time.monotonic() + args.wait_s
    while True:
        try:
            code = asyncio.run(_main(args, settings))
        except KafkaSecurityError as err:
            print(f"prizeflow-topics: refusing to start: {err}", file=sys.stderr)  # noqa: T201 - a CLI's output
            code = 2
        except KafkaAuthenticationError as err:
            print(f"prizeflow-topics: {err}", file=sys.stderr)  # noqa: T201 - a CLI's output
            code = 2
        except KafkaError as err:
            if time.monotonic() < deadline:
                print(f"Kafka did not answer ({type(err).__name__}); retrying", file=sys.stderr)  # noqa: T201
                time.sleep(2)
                continue
            print(f"Kafka did not answer: {type(err).__name__}", file=sys.stderr)  # noqa: T201 - a CLI's output
            code = 2
        raise SystemExit(code)


if __name__ == "__main__":
    main()
