"""The exports' shared parts: a period refused before a byte, cells a spreadsheet shows as text and never runs,
CSV quoted by the csv module, one piece of body per chunk."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest

from prizeflow_runtime.csv_stream import (
    ExportPeriod,
    ExportPeriodError,
    Row,
    csv_stream,
    encode_rows,
    iso_utc,
    neutralise,
)


def test_a_period_is_utc_and_half_open() -> None:
    p = ExportPeriod.parse("2026-01-01", "2026-01-02T01:00:00+01:00")
    assert (p.since, p.until) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert ExportPeriod.parse("2026-01-01T00:00:00Z", "2027-01-02T00:00:00Z").until - p.since == timedelta(days=366)


@pytest.mark.parametrize(
    ("since", "until", "said"),
    [
        ("2026-01-02", "2026-01-01", "must be before"),
        ("2026-01-01", "2026-01-01", "must be before"),
        ("2026-01-01", "2027-01-02T00:00:00.000001Z", "at most 366 days"),
        ("last week", "2026-01-01", "not an ISO 8601"),
        (None, "2026-01-01", "`since` is required"),
        ("2026-01-01", " ", "`until` is required"),
    ],
)
def test_a_bad_period_is_a_400_problem(since: str | None, until: str | None, said: str) -> None:
    with pytest.raises(ExportPeriodError) as refused:
        ExportPeriod.parse(since, until)
    assert (refused.value.status, refused.value.code) == (400, "invalid_period")
    assert said in refused.value.detail


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")'])
def test_a_formula_is_written_as_text(value: str) -> None:
    assert neutralise(value) == "'" + value
    (row,) = list(csv.reader(io.StringIO(encode_rows([[value]]).decode(), newline="")))
    assert row == ["'" + value]


def test_amounts_stay_numbers_and_text_is_quoted_by_the_csv_module() -> None:
    at = datetime(2026, 1, 1, 1, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    body = encode_rows([[-1_200, 'a,"b"\nc', None, at, "plain"]]).decode()
    assert body == '-1200,"a,""b""\nc",,2026-01-01T00:00:00.000005Z,plain\r\n'
    assert iso_utc(at) == "2026-01-01T00:00:00.000005Z"
    assert iso_utc(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    with pytest.raises(TypeError):
        encode_rows([[True]])


async def test_the_header_first_then_one_piece_per_chunk() -> None:
    async def chunks() -> AsyncIterator[Sequence[Row]]:
        yield [("a", 1), ("b", 2)]
        yield []
        yield [("c", 3)]

    pieces = [p async for p in csv_stream(("name", "amount"), chunks())]
    assert pieces == [b"name,amount\r\n", b"a,1\r\nb,2\r\n", b"c,3\r\n"]
