"""Real PostgreSQL + Kafka (devstack fixtures) and the webhooks service as a real process."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.envelope import HEADER_TYPE, Envelope, decode
from prizeflow_contracts.topics import AUDIT, WEBHOOK_PROVIDER_EVENTS
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit import fetch, header, provision_test_topics, read_topic
from prizeflow_testkit.webhooks import WEBHOOKS_ALEMBIC_INI, WebhooksProcess

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `webhooks_fakes`: the stores' contract tests


@pytest.fixture
def db_url(migrated_database: Callable[[str], str]) -> str:
    return migrated_database(WEBHOOKS_ALEMBIC_INI)


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_suffix: str) -> str:
    """Every contract topic under the test's suffix, as the ops Job provisions them: the service only verifies."""
    await provision_test_topics(kafka_bootstrap, topic_suffix)
    return topic_suffix


@pytest.fixture
def webhooks(
    db_url: str, kafka_bootstrap: str, topics: str, tmp_path: Path
) -> Iterator[Callable[..., WebhooksProcess]]:
    started: list[WebhooksProcess] = []

    def make(**kwargs: Any) -> WebhooksProcess:
        svc = WebhooksProcess.create(
            db_url, kafka_bootstrap, topics, tmp_path, name=f"webhooks-{len(started)}", **kwargs
        )
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()


def token(user: str, *roles: str) -> str:
    """Signed by the test session's dev identity, for the webhooks service's dev audience."""
    identity = DevIdentity.from_jwks_url(os.environ["JWT_JWKS_URL"])
    return identity.issue(user, roles, audience=audience_for("webhooks"))


async def published(
    bootstrap: str, suffix: str, event_type: str | None = None, *, audit: bool = False
) -> list[Envelope[Any]]:
    """Envelopes on the provider-events (or audit) topic, in offset order per partition."""
    topic = (AUDIT if audit else WEBHOOK_PROVIDER_EVENTS).name + suffix
    return [
        decode(record.value)
        for record in await read_topic(bootstrap, topic)
        if event_type is None or header(record, HEADER_TYPE) == event_type
    ]


async def counts(db_url: str) -> tuple[int, int]:
    """(deliveries stored, outbox rows still to publish)."""
    [row] = await fetch(db_url, "SELECT (SELECT count(*) FROM deliveries) AS d, (SELECT count(*) FROM outbox) AS o")
    return int(row["d"]), int(row["o"])
