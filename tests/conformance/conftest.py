"""One payouts instance per provider harness per module (its own database, topics and log capture)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Final

import pytest

from prizeflow_devstack.infra import Infra, create_database, drop_database
from prizeflow_devstack.topics import delete_suffixed
from prizeflow_runtime.migrations import upgrade_to_head
from prizeflow_testkit.conformance import HARNESSES, Kit, KitEnv, LogCapture
from prizeflow_testkit.payouts import ALEMBIC_INI

# Our own code logs at DEBUG for the whole module (start-up included); libraries at INFO.
OUR_LOGGERS: Final = ("prizeflow_payouts", "prizeflow_runtime", "prizeflow_contracts", "prizeflow_stellar")


@pytest.fixture(scope="module", params=list(HARNESSES))
async def kit(
    request: pytest.FixtureRequest, infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Kit]:
    harness = HARNESSES[request.param]()
    name = f"test_{uuid.uuid4().hex[:16]}"
    suffix = f".t{uuid.uuid4().hex[:12]}"
    capture = LogCapture()
    root = logging.getLogger()
    levels = {n: logging.getLogger(n).level for n in (*OUR_LOGGERS, "")}
    root.addHandler(capture)
    root.setLevel(min(root.level, logging.INFO) or logging.INFO)
    for n in OUR_LOGGERS:
        logging.getLogger(n).setLevel(logging.DEBUG)
    db = await create_database(infra, name)
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            await upgrade_to_head(ALEMBIC_INI, db)
            env = KitEnv(infra, db, infra.kafka_bootstrap, suffix, tmp_path_factory.mktemp(harness.name), monkeypatch)
            async with harness.running(env) as running:
                running.extra["log"] = capture
                yield running
        finally:
            root.removeHandler(capture)
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)
            delete_suffixed(infra.kafka_bootstrap, suffix)
            await drop_database(infra, name)
