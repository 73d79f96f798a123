"""What kind of failure an exception is, read from the exception alone (no driver imported by the predicates)."""

from __future__ import annotations

import subprocess

import pytest

from prizeflow_runtime import outages


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


class Wrapped(Exception):
    def __init__(self, orig: BaseException, *, invalidated: bool = False) -> None:
        super().__init__("wrapped")
        self.orig = orig
        self.connection_invalidated = invalidated


@pytest.mark.parametrize(
    ("exc", "outage", "conflict", "timeout", "lock"),
    [
        (PgError("57P01"), True, False, False, False),
        (Wrapped(PgError("08006")), True, False, False, False),
        (Wrapped(ValueError("x"), invalidated=True), True, False, False, False),
        (ConnectionRefusedError(), True, False, False, False),
        (Wrapped(PgError("40P01")), False, True, False, False),
        (PgError("40001"), False, True, False, False),
        (Wrapped(PgError("55P03")), False, False, True, True),
        (PgError("57014"), False, False, True, False),
        (ValueError("a bug"), False, False, False, False),
    ],
)
def test_each_failure_is_told_apart(
    exc: BaseException, outage: bool, conflict: bool, timeout: bool, lock: bool
) -> None:
    assert outages.is_outage(exc) is outage
    assert outages.is_transient_conflict(exc) is conflict
    assert outages.is_database_timeout(exc) is timeout
    assert outages.is_lock_timeout(exc) is lock


def test_the_kafka_and_pool_errors_are_outages_by_their_own_classes() -> None:
    from aiokafka.errors import KafkaConnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    assert outages.is_outage(KafkaConnectionError())
    assert outages.is_outage(PoolTimeoutError())
    assert not outages.is_outage(subprocess.TimeoutExpired("x", 1.0))


def test_a_cycle_in_the_chain_ends() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert not outages.is_outage(a)
    assert outages.exc_sqlstate(a) is None
