"""What every finance export shares: the period it covers, checked before a byte is sent, and its rows written
as CSV chunk by chunk (a year of a busy platform never sits in memory).

Pure: this module imports no I/O library, so an application module may use it (the package's `__init__` still
loads them: STYLE.md's known difference).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from prizeflow_runtime.errors import ErrorKind, UseCaseError

MAX_PERIOD: Final = timedelta(days=366)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection, OWASP); tab and carriage
# return too, as some applications strip them before deciding.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | datetime | None
Row = Sequence[Cell]


class ExportPeriodError(UseCaseError):
    """A period an export refuses (problem details 400, code `invalid_period`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(ErrorKind.BAD_REQUEST, "invalid_period", detail)


@dataclass(frozen=True, slots=True)
class ExportPeriod:
    """[since, until) in UTC: at most `MAX_PERIOD` long, since strictly before until."""

    since: datetime
    until: datetime

    @classmethod
    def parse(cls, since: str | None, until: str | None, *, longest: timedelta = MAX_PERIOD) -> ExportPeriod:
        """ISO 8601 instants (`2026-01-01`, `2026-01-01T00:00:00Z`, with any offset); one without an offset is
        UTC."""
        period = cls(_instant("since", since), _instant("until", until))
        if period.since >= period.until:
            raise ExportPeriodError(f"since ({since}) must be before until ({until})")
        if period.until - period.since > longest:
            raise ExportPeriodError(f"a period is at most {longest.days} days; export a longer one in parts")
        return period


def _instant(name: str, value: str | None) -> datetime:
    if value is None or not value.strip():
        raise ExportPeriodError(f"`{name}` is required (an ISO 8601 instant, e.g. 2026-01-01T00:00:00Z)")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise ExportPeriodError(f"`{name}` is not an ISO 8601 instant: {value[:64]!r}") from err
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def iso_utc(at: datetime) -> str:
    """ISO 8601 in UTC with a `Z` and always six digits of microseconds: one width, so text order is time order."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def neutralise(value: str) -> str:
    """A text cell a spreadsheet shows as text, never runs: a leading formula character gets a `'` before it."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _cell(value: Cell) -> str | int:
    # bool is an int: refuse to guess how finance wants it written.
    if isinstance(value, bool):
        raise TypeError("a CSV export writes no booleans; give the column its words")
    if value is None:
        return ""
    if isinstance(value, int):
        return value  # amounts: a negative number stays a number
    if isinstance(value, datetime):
        return iso_utc(value)
    return neutralise(value)


def encode_rows(rows: Sequence[Row]) -> bytes:
    """`rows` as CSV (RFC 4180: quoted where needed, CRLF line ends), UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([_cell(c) for c in row] for row in rows)
    return buffer.getvalue().encode()


async def csv_stream(header: Sequence[str], chunks: AsyncIterable[Sequence[Row]]) -> AsyncIterator[bytes]:
    """The header row, then one piece of the body per chunk of rows (an empty chunk sends nothing)."""
    yield encode_rows([list(header)])
    async for chunk in chunks:
        if chunk:
            yield encode_rows(chunk)


__all__ = [
    "MAX_PERIOD",
    "Cell",
    "ExportPeriod",
    "ExportPeriodError",
    "Row",
    "csv_stream",
    "encode_rows",
    "iso_utc",
    "neutralise",
]
