"""JSON logging with the correlation id and event id taken from context variables."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from prizeflow_runtime.redaction import redact

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)
event_id_var: ContextVar[str | None] = ContextVar("event_id", default=None)

_RESERVED: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@contextmanager
def log_context(*, correlation_id: str | None, event_id: str | None = None) -> Iterator[None]:
    """Bind the ids of the flow being handled to every log line inside the block."""
    c_token = correlation_id_var.set(correlation_id)
    e_token = event_id_var.set(event_id)
    try:
        yield
    finally:
        correlation_id_var.reset(c_token)
        event_id_var.reset(e_token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        if (cid := correlation_id_var.get()) is not None:
            doc["correlation_id"] = cid
        if (eid := event_id_var.get()) is not None:
            doc["event_id"] = eid
        doc.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class RedactingFormatter(logging.Formatter):
    """The plain-text format, with statement values cut out of messages and tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, *, level: str = "INFO", json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # `stripe` logs its requests' parameters and its answers' bodies (payers' emails, payment links) at DEBUG.
    for noisy in ("aiokafka", "kafka", "faststream", "sqlalchemy.engine", "uvicorn.access", "stripe"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
