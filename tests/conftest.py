"""Fixtures every whole-platform suite shares (e2e, adversarial): one platform of processes per session."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))  # game server, API clients, DB helpers

from support import Api, GameServer

from prizeflow_devstack.infra import Infra
from prizeflow_devstack.platform import Platform

PLATFORM_ENV = {"CONSUMER_RETRY_MAX_ATTEMPTS": "3", "PAYOUTS_WORKER_INTERVAL_MS": "100"}


@pytest.fixture(scope="session")
def platform(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Every service as its own process on real Kafka + PostgreSQL, isolated by topic suffix and databases."""
    p = Platform(infra, tmp_path_factory.mktemp("platform"), env=dict(PLATFORM_ENV))
    try:
        p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture
async def game(platform: Platform, kafka_bootstrap: str) -> AsyncIterator[GameServer]:
    server = GameServer(kafka_bootstrap, platform.suffix)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def api(platform: Platform) -> AsyncIterator[Api]:
    client = Api(platform)
    yield client
    await client.close()
