from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from prizeflow_testkit.payouts import ALEMBIC_INI, WEBHOOK_SECRET_ENV

sys.path.insert(0, str(Path(__file__).parents[1] / "support"))  # the fakes of tests/support: the stores' contract tests

pytestmark = pytest.mark.integration


@pytest.fixture
def db(migrated_database: Callable[[str], str]) -> str:
    """A fresh database at the payouts schema head (a copy of the session's migrated template)."""
    return migrated_database(ALEMBIC_INI)


@pytest.fixture(autouse=True)
def _webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, "test-webhook-secret")
