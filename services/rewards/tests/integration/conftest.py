from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import create_engine

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # the fakes (the stores' contract) and `rewards_sql`

ALEMBIC_INI = str(Path(__file__).resolve().parents[2] / "alembic.ini")


@pytest.fixture
def database_url(migrated_database: Callable[[str], str]) -> str:
    """A fresh database at the rewards schema head (a copy of the session's migrated template)."""
    return migrated_database(ALEMBIC_INI)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=20)
    yield engine
    await engine.dispose()
