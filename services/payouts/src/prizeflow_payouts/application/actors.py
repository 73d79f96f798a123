"""Who acts on a payout through the admin API, and how a refusal of what they asked reads."""

from __future__ import annotations

from dataclasses import dataclass

from prizeflow_runtime.errors import UseCaseError


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: str
    roles: frozenset[str]
    correlation_id: str


class AdminError(UseCaseError):
    """An admin request refused: rendered as problem details by the HTTP app (kind → status)."""


__all__ = ["Actor", "AdminError"]
