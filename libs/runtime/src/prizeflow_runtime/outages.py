"""What kind of failure an exception is, read from the exception alone: an outage, a lost race, a timeout.

Pure on purpose (no database or Kafka client is imported): use cases, the group commit and the unit of work ask these
questions without loading the I/O stacks. The drivers are recognised by what they carry — a SQLSTATE (asyncpg's
`sqlstate`, psycopg's `pgcode`), SQLAlchemy's `orig` and `connection_invalidated`, the class names of the aiokafka
and pool errors — and the chain (`orig`, `__cause__`, `__context__`) is walked once, cycles included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

# A lost or refused connection: admin shutdown, crash shutdown, cannot connect now, connection failures, too many.
_OUTAGE_SQLSTATES: Final = frozenset({"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006", "53300"})
# A deadlock or a serialization failure: PostgreSQL rolled the whole transaction back, so running it again is safe.
_CONFLICT_SQLSTATES: Final = frozenset({"40001", "40P01"})
# statement_timeout (query_canceled) and lock_timeout (lock_not_available): DATABASE_*_TIMEOUT_MS cut it off.
_TIMEOUT_SQLSTATES: Final = frozenset({"57014", "55P03"})
LOCK_NOT_AVAILABLE: Final = "55P03"
# The driver's connection errors, by name (asyncpg's, SQLAlchemy's wrapper).
_CONNECTION_ERRORS: Final = frozenset({"ConnectionDoesNotExistError", "CannotConnectNowError", "InterfaceError"})
# Kafka unreachable (aiokafka.errors) and the connection pool exhausted (sqlalchemy.exc.TimeoutError).
_KAFKA_OUTAGES: Final = frozenset(
    {"KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError", "RequestTimedOutError"}
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's exception here
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)


def _sqlstate(exc: BaseException) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def exc_sqlstate(exc: BaseException) -> str | None:
    """The first SQLSTATE in the chain."""
    return next((s for e in _chain(exc) if (s := _sqlstate(e)) is not None), None)


def is_infrastructure_outage(exc: BaseException) -> bool:
    """A lost or refused database connection (restart, failover, too many clients), not a bug."""
    for e in _chain(exc):
        if isinstance(e, (ConnectionError, TimeoutError)) or (isinstance(e, OSError) and e.errno is not None):
            return True
        if getattr(e, "connection_invalidated", False) is True:
            return True
        if _sqlstate(e) in _OUTAGE_SQLSTATES or type(e).__name__ in _CONNECTION_ERRORS:
            return True
    return False


def _pool_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ == "TimeoutError" and type(exc).__module__ == "sqlalchemy.exc"


def is_outage(exc: BaseException) -> bool:
    """PostgreSQL or Kafka unreachable (or the connection pool exhausted): the request may succeed later."""
    name = type(exc).__name__
    if (name in _KAFKA_OUTAGES and type(exc).__module__.startswith("aiokafka")) or _pool_timeout(exc):
        return True
    return is_infrastructure_outage(exc)


def is_transient_conflict(exc: BaseException) -> bool:
    """A deadlock (40P01) or serialization failure (40001) anywhere in the chain: safe to run again, whole."""
    return any(_sqlstate(e) in _CONFLICT_SQLSTATES for e in _chain(exc))


def is_database_timeout(exc: BaseException) -> bool:
    """A statement or a lock wait past the session's limit: rolled back, and worth retrying later."""
    return exc_sqlstate(exc) in _TIMEOUT_SQLSTATES


def is_lock_timeout(exc: BaseException) -> bool:
    """A lock wait past `lock_timeout` (55P03): one row was held by another transaction for too long."""
    return exc_sqlstate(exc) == LOCK_NOT_AVAILABLE


__all__ = [
    "LOCK_NOT_AVAILABLE",
    "exc_sqlstate",
    "is_database_timeout",
    "is_infrastructure_outage",
    "is_lock_timeout",
    "is_outage",
    "is_transient_conflict",
]
