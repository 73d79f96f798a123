"""The one error a use case raises: a stable code, a detail, and what kind of failure it is.

Use cases know nothing of HTTP; the app factory maps the kind to a status and the error to RFC 9457 problem
details once, for every service.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorKind(Enum):
    """What went wrong, from the caller's side; each kind has exactly one HTTP status."""

    BAD_REQUEST = 400
    FORBIDDEN = 403
    NOT_FOUND = 404
    CONFLICT = 409
    TOO_LARGE = 413
    UNSUPPORTED_MEDIA_TYPE = 415
    INVALID = 422
    UNAVAILABLE = 503

    @property
    def status(self) -> int:
        return int(self.value)


class UseCaseError(Exception):
    """A request a use case refuses. `code` is stable (snake_case): clients and dashboards branch on it."""

    def __init__(self, kind: ErrorKind, code: str, detail: str, **extra: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.kind = kind
        self.code = code
        self.detail = detail
        self.extra = extra

    @property
    def status(self) -> int:
        return self.kind.status


__all__ = ["ErrorKind", "UseCaseError"]
