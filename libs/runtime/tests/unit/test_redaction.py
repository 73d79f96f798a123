"""Statement values never reach a log line or a DLQ header, whatever the driver or SQLAlchemy quoted."""

from __future__ import annotations

import json
import logging

from prizeflow_runtime.logging import JsonFormatter
from prizeflow_runtime.redaction import redact

SECRET_ROW = "(3b96a16c-7f76-5cb2-ace3-5b212ac01188, player_wallet, player-4242, USDC, 1, 50, 0, 0, 0)"
ASYNCPG = (
    'new row for relation "ledger_accounts" violates check constraint "debits_must_not_exceed_credits"\n'
    f"DETAIL:  Failing row contains {SECRET_ROW}."
)
SQLALCHEMY = (
    "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class 'asyncpg.exceptions.UniqueViolationError'>: "
    'duplicate key value violates unique constraint "claims_pkey"\n'
    "DETAIL:  Key (id)=(cl-GBXYZDESTINATION) already exists.\n"
    "[SQL: INSERT INTO claims (id, destination) VALUES ($1::VARCHAR, $2::VARCHAR)]\n"
    "[parameters: ('cl-1', 'GBXYZDESTINATION')]\n"
    "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
)


def test_rows_keys_and_parameters_are_cut_out() -> None:
    for text in (ASYNCPG, SQLALCHEMY):
        out = redact(text)
        assert "player-4242" not in out
        assert "GBXYZDESTINATION" not in out
        assert "redacted" in out
    assert "debits_must_not_exceed_credits" in redact(ASYNCPG)  # what failed stays readable
    assert "claims_pkey" in redact(SQLALCHEMY)


def test_a_json_log_line_with_a_database_exception_carries_no_row() -> None:
    try:
        raise RuntimeError(ASYNCPG)
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "batch failed: %s", (ASYNCPG,), None)
        import sys

        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter("test").format(record))
    assert "player-4242" not in json.dumps(line)
    assert "Failing row contains (redacted)" in line["exc"] or "DETAIL: redacted" in line["exc"]
