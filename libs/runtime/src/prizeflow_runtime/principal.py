"""Who is asking: the roles a verified token grants, and the caller they name (pure: use cases import it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    PLAYER = "player"
    ADMIN = "admin"
    APPROVER = "approver"
    OPS = "ops"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    roles: frozenset[Role]

    def has_any(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


__all__ = ["Principal", "Role"]
