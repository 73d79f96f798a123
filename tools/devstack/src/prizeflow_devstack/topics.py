"""The devstack's side of topic provisioning: the same step production runs as a Job, before services start.

Services verify their topics and never create them (`prizeflow_runtime.topics`), so whatever starts one
locally (`prizeflow-dev up`/`run`, a `Platform`, a test) provisions first, with `KAFKA_TOPIC_*` from the
environment (dev defaults: the contract's partitions, replication factor 1).
"""

from __future__ import annotations

from prizeflow_devstack.infra import InfraError
from prizeflow_devstack.procs import run_sync
from prizeflow_runtime.settings import TopicSettings
from prizeflow_runtime.topics import ProvisionReport, delete_topics_with_suffix, provision_topics, topic_plan


def provision(bootstrap: str, suffix: str = "", *, increase_partitions: bool = False) -> ProvisionReport:
    """Every contract topic and DLQ under `suffix`; the report says what was created, present or short."""
    plan = topic_plan(TopicSettings(), suffix=suffix)
    return run_sync(lambda: provision_topics(bootstrap, plan, increase_partitions=increase_partitions))


def provision_or_fail(bootstrap: str, suffix: str = "") -> ProvisionReport:
    """`provision`, refusing (InfraError) when a topic has fewer partitions than expected: never accepted
    silently, never grown implicitly."""
    report = provision(bootstrap, suffix)
    if not report.ok:
        short = "; ".join(map(str, report.short))
        raise InfraError(
            f"topics with fewer partitions than expected: {short}. "
            "Add them with `prizeflow-dev topics --increase-partitions` (keys move to other partitions)."
        )
    return report


def delete_suffixed(bootstrap: str, suffix: str) -> list[str]:
    """Delete `*<suffix>` and `*<suffix>.dlq`: what a test or an e2e platform provisioned."""
    return run_sync(lambda: delete_topics_with_suffix(bootstrap, suffix))
