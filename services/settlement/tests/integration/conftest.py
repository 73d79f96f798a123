"""Real PostgreSQL + Kafka (devstack fixtures) and the settlement service as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_contracts.envelope import Envelope, EventPayload, new_event
from prizeflow_contracts.events.game import EntryRecorded, Placement, RoundClosed, RoundOpened, RoundResultsReported
from prizeflow_runtime.db import create_engine
from prizeflow_runtime.dev_identity import DevIdentity
from prizeflow_runtime.outbox import idempotent_producer
from prizeflow_runtime.settings import audience_for
from prizeflow_testkit import Process, free_port, provision_test_topics
from prizeflow_testkit.events import example_payload

ALEMBIC_INI = str(Path(__file__).parents[2] / "alembic.ini")
sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `settlement_fakes`: the stores' contract tests


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def db_url(migrated_database: Callable[[str], str]) -> str:
    return migrated_database(ALEMBIC_INI)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url, pool_size=2)
    yield eng
    await eng.dispose()


@pytest.fixture
def suffix(topic_suffix: str) -> str:
    """The test's topic suffix; its topics are deleted afterwards (the devstack's `topic_suffix`)."""
    return topic_suffix


def round_events(round_id: str, players: int = 3, *, at: datetime | None = None) -> list[Envelope[EventPayload]]:
    """A full round as a game server publishes it: open, entries, close, results (keyed by the round id)."""
    at = at or datetime.now(UTC)

    def ev(payload: EventPayload) -> Envelope[EventPayload]:
        return new_event(payload, source="/game/it", correlation_id=round_id, subject=round_id)

    out = [ev(example_payload(RoundOpened, round_id=round_id, opened_at=at))]
    out += [
        ev(example_payload(EntryRecorded, round_id=round_id, entry_id=f"{round_id}-e{i}", player_id=f"p{i}"))
        for i in range(players)
    ]
    out.append(ev(example_payload(RoundClosed, round_id=round_id, entry_count=players, closed_at=at)))
    placements = [Placement(player_id=f"p{i}", rank=i + 1, score=1000 - i) for i in range(players)]
    out.append(ev(RoundResultsReported(round_id=round_id, placements=placements, reported_at=at)))
    return out


async def publish(bootstrap: str, topic: str, items: Sequence[Envelope[Any] | tuple[bytes, bytes]]) -> None:
    producer = idempotent_producer(bootstrap)
    await producer.start()
    try:
        futures = []
        for item in items:
            if isinstance(item, tuple):
                key, value = item
                futures.append(await producer.send(topic, value=value, key=key))
            else:
                futures.append(await producer.send(topic, value=item.encode(), key=item.key, headers=item.headers()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def prepare_topics(bootstrap: str, suffix: str) -> None:
    """Every contract topic under `suffix`, as the ops Job provisions them: the service only verifies."""
    await provision_test_topics(bootstrap, suffix)


async def settled_rounds(engine: AsyncEngine) -> list[str]:
    """Round ids settled in the database. (The outbox is no record: the relay deletes what it published.
    That each round has exactly one RoundSettled is asserted on Kafka, by distinct event id.)"""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT round_id FROM rounds WHERE state = 'settled' ORDER BY settled_at"))
        return [str(r[0]) for r in rows]


def token(user: str, *roles: str) -> str:
    """Signed by the test session's dev identity, for settlement's dev audience (the process inherits the JWKS)."""
    identity = DevIdentity.from_jwks_url(os.environ["JWT_JWKS_URL"])
    return identity.issue(user, roles, audience=audience_for("settlement"))


class ServiceProcess(Process):
    """`python -m prizeflow_settlement` with its env on a free port; stdout+stderr go to a log file shown on
    failure (the testkit's runner: ready on /health/ready, stopped SIGTERM then SIGKILL)."""

    def __init__(self, db_url: str, bootstrap: str, suffix: str, log: Path) -> None:
        self.port = free_port()
        env = {
            "DATABASE_URL": db_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HTTP_PORT": str(self.port),
            "KAFKA_TOPIC_SUFFIX": suffix,
            "OUTBOX_POLL_INTERVAL_MS": "50",
            "LOG_JSON": "false",
        }
        super().__init__([sys.executable, "-m", "prizeflow_settlement"], env, log, f"{self.base}/health/ready")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def service_factory(db_url: str, kafka_bootstrap: str, suffix: str, tmp_path: Path) -> Iterator[Any]:
    started: list[ServiceProcess] = []

    def make() -> ServiceProcess:
        svc = ServiceProcess(db_url, kafka_bootstrap, suffix, tmp_path / f"settlement-{len(started)}.log")
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.stop()
