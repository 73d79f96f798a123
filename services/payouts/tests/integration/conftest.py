from __future__ import annotations

import pytest

from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_testkit.payouts import ALEMBIC_INI, WEBHOOK_SECRET_ENV

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(fresh_database: str) -> str:
    """A fresh database migrated to head."""
    await upgrade_to_head(ALEMBIC_INI, fresh_database)
    return fresh_database


@pytest.fixture(autouse=True)
def _webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "test-webhook-secret")
