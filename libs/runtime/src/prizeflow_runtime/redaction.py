"""What an error may say in a log line or a DLQ header: never the values a statement carried.

PostgreSQL and the drivers put row contents in their messages (`DETAIL: Failing row contains (...)`,
`Key (...)=(...) already exists`) and SQLAlchemy appends the bound parameters (`[parameters: ...]`). Those
are player ids, destinations, amounts. They are cut out wherever an exception becomes text we emit.
"""

from __future__ import annotations

import re
from typing import Final

_PATTERNS: Final = (
    # SQLAlchemy: "[parameters: (...)]" (also when hide_parameters is off somewhere) and the SQL it ran.
    (re.compile(r"\[parameters: .*?\](?=\s*(\(Background on this error|\Z|\n))", re.DOTALL), "[parameters: redacted]"),
    # PostgreSQL details that quote values: failing rows, keys, arrays.
    (re.compile(r"DETAIL:.*?(?=\n(?!\s)|\n\s*\[|\Z)", re.DOTALL), "DETAIL: redacted"),
    (re.compile(r"Failing row contains \(.*?\)(?=\.|\s|$)", re.DOTALL), "Failing row contains (redacted)"),
    (re.compile(r"Key \((.*?)\)=\(.*?\)", re.DOTALL), r"Key (\1)=(redacted)"),
)


def redact(text: str) -> str:
    """`text` without the statement values PostgreSQL, asyncpg or SQLAlchemy quoted in it."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


__all__ = ["redact"]
