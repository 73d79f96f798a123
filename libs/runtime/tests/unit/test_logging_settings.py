from __future__ import annotations

import json
import logging

from prizeflow_runtime.logging import JsonFormatter, log_context
from prizeflow_runtime.settings import ServiceSettings


def test_json_log_lines_carry_the_correlation_and_event_ids_of_the_context() -> None:
    formatter = JsonFormatter("settlement")
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "settled %s", ("r-1",), None)
    rec.__dict__["round_state"] = "settled"
    with log_context(correlation_id="round-42", event_id="e-1"):
        inside = json.loads(formatter.format(rec))
    outside = json.loads(formatter.format(rec))
    assert inside["correlation_id"] == "round-42"
    assert inside["event_id"] == "e-1"
    assert inside["msg"] == "settled r-1"
    assert inside["service"] == "settlement"
    assert inside["round_state"] == "settled"
    assert "correlation_id" not in outside


def test_plain_postgres_urls_get_the_asyncpg_driver(monkeypatch: object) -> None:
    s = ServiceSettings(database_url="postgresql://u@h:5432/db")
    assert s.database_url == "postgresql+asyncpg://u@h:5432/db"
    assert ServiceSettings(database_url="postgres://h/db").database_url == "postgresql+asyncpg://h/db"
    assert ServiceSettings(service_name="rewards").source == "/prizeflow/rewards"


def test_at_debug_the_stripe_library_still_logs_only_warnings() -> None:
    """`stripe` logs request parameters and answer bodies (emails, payment links) at DEBUG, URLs with ids at INFO."""
    from prizeflow_runtime.logging import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("rewards", level="DEBUG")
        assert not logging.getLogger("stripe").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("aiokafka", "kafka", "faststream", "sqlalchemy.engine", "uvicorn.access", "stripe"):
            logging.getLogger(name).setLevel(logging.NOTSET)
