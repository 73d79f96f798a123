from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import create_engine
from prizeflow_runtime.migrations import upgrade_to_head

ALEMBIC_INI = str(Path(__file__).resolve().parents[2] / "alembic.ini")


@pytest.fixture
async def database_url(fresh_database: str) -> str:
    """A fresh database at the rewards schema head."""
    await upgrade_to_head(ALEMBIC_INI, fresh_database)
    return fresh_database


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=20)
    yield engine
    await engine.dispose()
