from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from prizeflow_runtime.db import create_engine, create_messaging_schema

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # `sample`, shared with the subprocess app

from sample import create_effects_schema

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(fresh_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(fresh_database, pool_size=5)
    await create_messaging_schema(engine)
    await create_effects_schema(engine)
    yield engine
    await engine.dispose()
