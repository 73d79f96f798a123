"""Identical log lines are rate-limited with a count; lines that differ are never held back by each other."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from prizeflow_runtime.logging import JsonFormatter, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logged(clock: Clock) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RepeatFilter(burst=3, window_s=10.0, keys=4, clock=clock))
    log = logging.getLogger("test.repeats")
    log.handlers[:], log.propagate = [handler], False
    log.setLevel(logging.INFO)
    yield log, out
    log.handlers[:] = []


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_repeated_at_full_speed_is_written_a_few_times_then_once_with_what_was_dropped(
    logged: tuple[logging.Logger, io.StringIO], clock: Clock
) -> None:
    log, out = logged
    for _ in range(10_000):
        try:
            raise ConnectionError("Unable to connect to the broker")
        except ConnectionError:
            log.exception("Unable to update metadata from %s", ["127.0.0.1:9092"])
    assert len(lines(out)) == 3
    clock.now += 10.0
    log.error(
        "Unable to update metadata from %s",
        ["127.0.0.1:9092"],
        exc_info=ConnectionError("Unable to connect to the broker"),
    )
    last = lines(out)[-1]
    assert (len(lines(out)), last["suppressed"]) == (4, 9_997)
    assert "suppressed" not in lines(out)[0]


def test_lines_that_differ_in_their_fields_or_level_are_each_written(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = logged
    for n in range(50):
        log.info("payout paid", extra={"payout_id": f"pay-{n}"})
    log.warning("payout paid", extra={"payout_id": "pay-0"})
    assert len(lines(out)) == 51


def test_it_tracks_at_most_its_keys_and_forgets_the_oldest(
    logged: tuple[logging.Logger, io.StringIO],
) -> None:
    log, out = logged
    for _ in range(5):
        log.info("first")
    for n in range(4):
        log.info("other %d", n)  # the fourth new key pushes "first" out
    log.info("first")  # a new window for it: written
    assert [line["msg"] for line in lines(out)].count("first") == 4
