"""JSON logging with the correlation id and event id taken from context variables, and identical lines
rate-limited with a count (`RepeatFilter`): a failure that repeats at full speed (a broker whose disk failed, every
client reconnecting) must not grow into a full disk."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
        line = redact(super().format(record))
        dropped = getattr(record, "suppressed", 0)
        return f"{line} ({dropped} identical lines suppressed before this one)" if dropped else line


class RepeatFilter(logging.Filter):
    """Identical lines (logger, level, message, extra fields and exception) pass `burst` times per `window_s`; the
    rest are dropped and counted, and the next one that passes carries `suppressed`: how many were dropped before it.
    Lines that differ in anything (a payout id in `extra`) are never held back by each other. At most `keys` distinct
    lines are tracked; past that the oldest window is forgotten."""

    def __init__(
        self, *, burst: int = 5, window_s: float = 10.0, keys: int = 2048, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst, self.window_s, self.keys, self.clock = burst, window_s, keys, clock
        self._seen: dict[tuple[Any, ...], list[float | int]] = {}  # key -> [window start, passed, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        extra = tuple(sorted((k, repr(v)) for k, v in record.__dict__.items() if k not in _RESERVED))
        error = repr(record.exc_info[1]) if record.exc_info and record.exc_info[1] is not None else None
        key = (record.name, record.levelno, record.getMessage(), extra, error)
        now = self.clock()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] >= self.window_s:
                dropped = int(state[2]) if state is not None else 0
                if state is None and len(self._seen) >= self.keys:
                    del self._seen[next(iter(self._seen))]
                self._seen.pop(key, None)
                self._seen[key] = [now, 1, 0]
                if dropped:
                    record.suppressed = dropped
                return True
            if state[1] < self.burst:
                state[1] = int(state[1]) + 1
                return True
            state[2] = int(state[2]) + 1
            return False


def configure_logging(service: str, *, level: str = "INFO", json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RepeatFilter())
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
