"""Typed path parameters: an id in a URL is checked where the request comes in, by the rule of the contracts.

A handler takes `round_id: IdentifierPath` (or `dead_letter_id: SerialPath`) instead of a bare `str`/`int`; a value
that is not one is a 400 problem naming the parameter (`errors: [{key, message, source: path}]`) before any handler
runs, so nothing is read or written for it and no event refuses it later (a formula, a control character, a 10 kB
string, a Unicode look-alike).

Why types of their own and not `PathParameter(pattern=...)`: Litestar hands a pattern to msgspec, which searches
with Python's `re`, where `$` also matches before a final newline (`"p-1\\n"` passed there and was refused by the
audit event afterwards: a 500). Here the one rule, `prizeflow_contracts.ids.is_identifier`, is matched whole; its
compiled pattern is built once, at import. The route declares the segment `:str` (a `:int` route would turn a
fullwidth `1` or `+1` into 1 before anything could look at it): the decoders read the text the client sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Final

from litestar.params import PathParameter

from prizeflow_contracts.ids import IDENTIFIER_PATTERN, MAX_IDENTIFIER_CHARS, is_identifier
from prizeflow_contracts.money import INT64_MAX

SERIAL_PATTERN: Final = r"^[1-9][0-9]{0,18}$"
_SERIAL_RE: Final = re.compile(SERIAL_PATTERN)
IDENTIFIER_RULE: Final = "1-128 characters of A-Z a-z 0-9 : _ . -, the first a letter or a digit"
SERIAL_RULE: Final = f"a whole number from 1 to {INT64_MAX}, in ASCII digits"


class CheckedIdentifier(str):
    """A `str` that passed `is_identifier` at the boundary (its own type only so that the decoder finds it)."""

    __slots__ = ()


class CheckedSerial(int):
    """An `int` read from ASCII digits, 1..2^63-1 (a row's serial id): never a fullwidth digit, `+1`, `1_0`, or
    past int64."""

    __slots__ = ()


def _decode_identifier(kind: type[CheckedIdentifier], value: Any) -> CheckedIdentifier:
    if not is_identifier(value):
        raise ValueError(f"not an id: {IDENTIFIER_RULE}")
    return kind(value)


def _decode_serial(kind: type[CheckedSerial], value: Any) -> CheckedSerial:
    if not (isinstance(value, str) and _SERIAL_RE.fullmatch(value)) or int(value) > INT64_MAX:
        raise ValueError(f"not an id: {SERIAL_RULE}")
    return kind(value)


def _subclass_of(base: type) -> Callable[[Any], bool]:
    return lambda target: isinstance(target, type) and issubclass(target, base)


# Handed to every Litestar app (`type_decoders=`): without them a checked parameter refuses every value (fail closed).
TYPE_DECODERS: Final[list[tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]]] = [
    (_subclass_of(CheckedIdentifier), _decode_identifier),
    (_subclass_of(CheckedSerial), _decode_serial),
]

IdentifierPath = Annotated[
    CheckedIdentifier,
    PathParameter(
        description=f"An id: {IDENTIFIER_RULE}",
        schema_extra={"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": MAX_IDENTIFIER_CHARS},
    ),
]
SerialPath = Annotated[
    CheckedSerial,
    PathParameter(
        description=f"A serial id: {SERIAL_RULE}",
        schema_extra={"type": "integer", "minimum": 1, "maximum": INT64_MAX},
    ),
]

__all__ = [
    "IDENTIFIER_RULE",
    "SERIAL_PATTERN",
    "SERIAL_RULE",
    "TYPE_DECODERS",
    "CheckedIdentifier",
    "CheckedSerial",
    "IdentifierPath",
    "SerialPath",
]
