"""Fault injection: the next N API calls matching a method and a path prefix misbehave in one chosen way."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    CONNECTION_RESET = "connection_reset"  # cut before the request is processed: nothing happened
    RATE_LIMIT = "rate_limit"  # 429 -1003, not processed
    SERVER_ERROR = "server_error"  # 503 -1001, not processed (the client cannot know that)
    SERVER_ERROR_AFTER_SUCCESS = "server_error_after_success"  # processed, then answered 502
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"  # processed, the answer held back `delay_ms`
    DROP_AFTER_SUCCESS = "drop_after_success"  # processed, then the connection is cut

    @property
    def after_processing(self) -> bool:
        return self in (
            FaultKind.SERVER_ERROR_AFTER_SUCCESS,
            FaultKind.TIMEOUT_AFTER_SUCCESS,
            FaultKind.DROP_AFTER_SUCCESS,
        )


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
        out = asdict(self)
        out["kind"] = self.kind.value
        return out


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self.triggered: list[dict[str, Any]] = []

    def add(
        self, kind: str, *, method: str = "*", path_prefix: str = "/", count: int = 1, delay_ms: int = 30_000
    ) -> FaultRule:
        if count < 1 or delay_ms < 0:
            raise ValueError("count must be >= 1 and delay_ms >= 0")
        if not path_prefix.startswith(("/api", "/sapi", "/")):
            raise ValueError("path_prefix must start with /")
        rule = FaultRule("flt_" + secrets.token_hex(6), FaultKind(kind), method.upper(), path_prefix, count, delay_ms)
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


__all__ = ["FaultKind", "FaultRule", "Faults"]
