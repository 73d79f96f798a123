"""One state machine type for every kind of thing that has states: a table of allowed moves, nothing else.

A state machine is data (STYLE: "a transition table, not scattered ifs"): `Transitions(kind, {state: {next, ...}})`.
Everything a caller asks of it is derived from the table — whether a move is allowed, which states are final (no way
out), which states lead to a given one (a guarded UPDATE's `WHERE state IN (...)`) — and every refusal is the one
`IllegalTransition(kind, src, dst)`, whatever the machine. The database holds the same tables as triggers or CHECKs
where a row's state is stored; a test holds each pair equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar

S = TypeVar("S", bound=Enum)


class IllegalTransition(Exception):  # noqa: N818 - the name the whole code base refuses a move with
    """A move the `kind`'s table does not allow: `src` (None: nothing yet) → `dst`."""

    def __init__(self, kind: str, src: Enum | None, dst: Enum) -> None:
        self.kind = kind
        self.src = src
        self.dst = dst
        before = src.value if src is not None else "nothing"
        super().__init__(f"{kind}: {before} → {dst.value} is not allowed")


@dataclass(frozen=True)
class Transitions(Generic[S]):
    """The allowed moves of one kind of thing. Every state of the enum is a key (a final state maps to nothing),
    so a state added to the enum and forgotten here fails at import, not at the first move."""

    kind: str
    table: Mapping[S, frozenset[S]]
    initial: frozenset[S] = field(default=frozenset())  # what a new one may start in (empty: not checked)

    def __post_init__(self) -> None:
        states = set(self.table) | {d for ds in self.table.values() for d in ds} | set(self.initial)
        if not states:
            raise ValueError(f"{self.kind}: an empty transition table")
        enum = type(next(iter(states)))
        missing = [s.value for s in enum if s not in self.table]
        if missing:
            raise ValueError(f"{self.kind}: no row for {', '.join(map(str, missing))} (a final state maps to nothing)")

    def allows(self, src: S | None, dst: S) -> bool:
        """`src` → `dst` is a move of the table (None → `dst`: `dst` is an initial state, when those are given)."""
        if src is None:
            return not self.initial or dst in self.initial
        return dst in self.table[src]

    def check(self, src: S | None, dst: S) -> None:
        """Raise `IllegalTransition` unless the move is allowed."""
        if not self.allows(src, dst):
            raise IllegalTransition(self.kind, src, dst)

    @property
    def finals(self) -> frozenset[S]:
        """The states nothing leaves: once there, the thing is decided for good."""
        return frozenset(s for s, nxt in self.table.items() if not nxt)

    def is_final(self, state: S) -> bool:
        return not self.table[state]

    def sources_of(self, dst: S) -> frozenset[S]:
        """Every state from which `dst` may be reached in one move (a guarded UPDATE's expected states)."""
        return frozenset(s for s, nxt in self.table.items() if dst in nxt)

    def __iter__(self) -> Iterator[tuple[S, S]]:
        """Every allowed move, (src, dst), in the table's order: what a trigger or a test enumerates."""
        for src, nxt in self.table.items():
            for dst in sorted(nxt, key=lambda s: str(s.value)):
                yield src, dst


__all__ = ["IllegalTransition", "Transitions"]
