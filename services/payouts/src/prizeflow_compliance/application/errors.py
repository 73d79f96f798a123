"""The refusals of compliance's use cases: a `UseCaseError` (stable code, `ErrorKind`), rendered once by the app."""

from __future__ import annotations

from prizeflow_runtime.errors import UseCaseError


class ComplianceError(UseCaseError):
    """A compliance request refused (problem details: kind → status)."""


__all__ = ["ComplianceError"]
