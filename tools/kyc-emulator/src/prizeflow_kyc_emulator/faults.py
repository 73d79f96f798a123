"""Fault injection: the next N API calls matching a method and a path prefix misbehave in one chosen way."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

_ids = itertools.count(1)


class FaultKind(StrEnum):
    SERVER_ERROR = "server_error"  # 500, not processed
    RATE_LIMIT = "rate_limit"  # 429, not processed
    CONNECTION_RESET = "connection_reset"  # cut before processing
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"  # processed and stored, the answer held back `delay_ms`

    @property
    def after_processing(self) -> bool:
        return self is FaultKind.TIMEOUT_AFTER_SUCCESS


@dataclass
class FaultRule:
    id: str
    kind: FaultKind
    method: str  # "*" for any
    path_prefix: str
    remaining: int
    delay_ms: int = 30_000

    def matches(self, method: str, path: str) -> bool:
        return self.remaining > 0 and self.method in ("*", method) and path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.triggered: list[dict[str, Any]] = []

    def add(
        self, kind: str, *, method: str = "*", path_prefix: str = "/resources/", count: int = 1, delay_ms: int = 30_000
    ) -> FaultRule:
        if count < 1 or delay_ms < 0:
            raise ValueError("count must be >= 1 and delay_ms >= 0")
        if not path_prefix.startswith("/resources"):
            raise ValueError("path_prefix must start with /resources")
        rule = FaultRule(f"flt_{next(_ids)}", FaultKind(kind), method.upper(), path_prefix, count, delay_ms)
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching this call, one use consumed."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.remaining -= 1
                self.triggered.append({"rule": rule.id, "kind": rule.kind.value, "method": method, "path": path})
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
        self.triggered.clear()


__all__ = ["FaultKind", "FaultRule", "Faults"]
