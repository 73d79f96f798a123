"""Page cursors of the rounds listing: opaque to clients, the last round id of a page."""

from __future__ import annotations

import base64
import binascii
import re

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.errors import ErrorKind, UseCaseError

_ROUND_ID = re.compile(IDENTIFIER_PATTERN)


def encode_cursor(round_id: str) -> str:
    return base64.urlsafe_b64encode(round_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The round id a cursor this API handed out names; anything else is `invalid_cursor` (400)."""
    try:
        round_id = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise _invalid() from err
    if not _ROUND_ID.fullmatch(round_id):  # e.g. a NUL the database cannot compare: never a round id we handed out
        raise _invalid()
    return round_id


def _invalid() -> UseCaseError:
    return UseCaseError(ErrorKind.BAD_REQUEST, "invalid_cursor", "the cursor is not one this API returned")


__all__ = ["decode_cursor", "encode_cursor"]
