"""The dev people: who the sign-in page offers with one click, and what `make run` prints a link for."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.auth import Role

# The subjects the services accept (prizeflow_runtime.auth): any other would get a token every call refuses.
USER_ID: Final = re.compile(IDENTIFIER_PATTERN)
# The order the sign-in page lists the roles in.
ROLE_ORDER: Final = (Role.PLAYER, Role.OPS, Role.ADMIN, Role.APPROVER)


@dataclass(frozen=True)
class DevPerson:
    user: str
    roles: tuple[Role, ...]
    name: str

    @property
    def label(self) -> str:
        """The accessible name of the person's sign-in button (what browser tests click)."""
        return f"Sign in as {self.user} ({', '.join(self.roles)})"


PRESETS: Final = (
    DevPerson("olivia", (Role.OPS,), "Olivia (ops)"),
    DevPerson("adam", (Role.ADMIN,), "Adam (admin)"),
    DevPerson("alice", (Role.APPROVER,), "Alice (approver)"),
    DevPerson("bob", (Role.APPROVER,), "Bob (approver)"),
    # An approver who is also a player: she must never approve her own payout.
    DevPerson("priya", (Role.APPROVER, Role.PLAYER), "Priya (approver, player)"),
    DevPerson("player-1", (Role.PLAYER,), "Player 1"),
)


def preset(user: str) -> DevPerson | None:
    return next((p for p in PRESETS if p.user == user), None)


def display_name(user: str) -> str:
    """The `name` claim: a preset's name, else the identifier itself (the custom form asks for no name)."""
    found = preset(user)
    return found.name if found else user


__all__ = ["PRESETS", "ROLE_ORDER", "USER_ID", "DevPerson", "display_name", "preset"]
