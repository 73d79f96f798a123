"""The request log: every API call an emulator received (never a key, a token or a signature), how it was answered
and which fault struck it — for tests asserting "called once", "retried with the same key"."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar


@dataclass
class RequestEntry:
    """One call; an emulator subclasses it (with defaults) for what it records besides."""

    method: str
    path: str
    at: float = field(default_factory=time.time)
    status: int | None = None
    fault: str | None = None


E = TypeVar("E", bound=RequestEntry)


class RequestLog(Generic[E]):
    def __init__(self, limit: int = 100_000) -> None:
        self.entries: deque[E] = deque(maxlen=limit)

    def record(self, entry: E) -> E:
        self.entries.append(entry)
        return entry

    def select(self, *, method: str | None = None, path: str | None = None) -> list[E]:
        """The calls of that method (any case) and exact path, oldest first."""
        return [
            e
            for e in self.entries
            if (method is None or e.method.upper() == method.upper()) and (path is None or e.path == path)
        ]

    def to_json(self, *, method: str | None = None, path: str | None = None) -> dict[str, Any]:
        """`{"requests": [...], "counts": {"<METHOD> <path>": n}}` (counts over every call)."""
        counts = Counter(f"{e.method} {e.path}" for e in self.entries)
        return {"requests": [asdict(e) for e in self.select(method=method, path=path)], "counts": dict(counts)}

    def clear(self) -> None:
        self.entries.clear()

    def __iter__(self) -> Iterator[E]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


__all__ = ["RequestEntry", "RequestLog"]
