"""Fault injection, the two ways an emulator misbehaves on purpose.

Scripted (`Faults`): "the next N calls matching this method, path prefix and these facts fail in this way" — a
test arms a rule, makes its calls, and the rule runs out (or, without a count, stays until cleared). Which kinds an
emulator accepts is its own choice among `FaultKind`; how a refusal looks (Stripe's error object, Binance's
`{"code", "msg"}`, a Bot API error) is its own too (see `strike`).

Random (`Knobs`): "this share of calls fails" — rates in [0, 1] drawn per call from the emulator's seeded RNG, and
the numbers, flags and lists the chain emulators steer their network with (a delay, a lag, frozen owners).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Self


class FaultKind(StrEnum):
    """Every way a scripted fault strikes. Before processing: nothing was carried out (a retry is safe); after: the
    call was carried out, then its answer went wrong (the client cannot know it happened)."""

    CONNECTION_RESET = "connection_reset"  # the connection cut (RST) before the call is carried out
    RATE_LIMIT = "rate_limit"  # 429, not carried out
    SERVER_ERROR = "server_error"  # 5xx, not carried out (the client cannot know that)
    API_ERROR = "api_error"  # Stripe's name for it: 500 `api_error`, not carried out
    OUTAGE = "outage"  # the API is down (502), not carried out
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"  # carried out; the answer held back `delay_ms`
    DROP_AFTER_SUCCESS = "drop_after_success"  # carried out; then the connection cut
    SERVER_ERROR_AFTER_SUCCESS = "server_error_after_success"  # carried out; then answered 5xx
    LEDGER_DELAY = "ledger_delay"  # carried out and answered; the emulator's books show it only once released

    @property
    def after_processing(self) -> bool:
        return self in _AFTER


_AFTER = frozenset(
    {
        FaultKind.TIMEOUT_AFTER_SUCCESS,
        FaultKind.DROP_AFTER_SUCCESS,
        FaultKind.SERVER_ERROR_AFTER_SUCCESS,
        FaultKind.LEDGER_DELAY,
    }
)


@dataclass
class FaultRule:
    """One armed fault. `remaining` None: until cleared. `match`: facts of the call that must be equal (a Bot API
    method, a user id); `params`: what the emulator's answer needs (a 429's retry_after)."""

    id: str
    kind: FaultKind
    method: str  # an HTTP method, "*" for any
    path_prefix: str
    remaining: int | None
    delay_ms: int
    match: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, path: str, facts: Mapping[str, Any]) -> bool:
        return (
            self.remaining != 0
            and self.method in ("*", method.upper())
            and path.startswith(self.path_prefix)
            and all(facts.get(k) == v for k, v in self.match.items())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "method": self.method,
            "path_prefix": self.path_prefix,
            "remaining": self.remaining,
            "delay_ms": self.delay_ms,
            "match": dict(self.match),
            "params": dict(self.params),
        }


class Faults:
    """The armed rules of one emulator, first match wins; and every strike, for tests asserting what failed."""

    def __init__(
        self,
        kinds: Sequence[FaultKind],
        *,
        path_prefixes: Sequence[str] = ("/",),
        delay_ms: int = 30_000,
    ) -> None:
        self.kinds = tuple(kinds)
        self.path_prefixes = tuple(path_prefixes)
        self.default_path_prefix = self.path_prefixes[0]
        self.default_delay_ms = delay_ms
        self.rules: list[FaultRule] = []
        self.triggered: list[dict[str, Any]] = []

    def add(
        self,
        kind: str,
        *,
        method: str = "*",
        path_prefix: str | None = None,
        count: int | None = 1,
        delay_ms: int | None = None,
        match: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> FaultRule:
        """Arm a rule (`count` None: until cleared). ValueError naming what is wrong."""
        try:
            chosen = FaultKind(kind)
        except ValueError:
            chosen = None
        if chosen not in self.kinds:
            raise ValueError(f"kind must be one of {sorted(k.value for k in self.kinds)}")
        prefix = self.default_path_prefix if path_prefix is None else path_prefix
        if not prefix.startswith(self.path_prefixes):
            raise ValueError(f"path_prefix must start with {' or '.join(self.path_prefixes)}")
        delay = self.default_delay_ms if delay_ms is None else delay_ms
        if (count is not None and count < 1) or delay < 0:
            raise ValueError("count must be >= 1 and delay_ms >= 0")
        rule = FaultRule(
            "flt_" + secrets.token_hex(6), chosen, method.upper(), prefix, count, delay, dict(match or {}),
            dict(params or {}),
        )  # fmt: skip
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str, facts: Mapping[str, Any] | None = None) -> FaultRule | None:
        """The first armed rule matching this call, one use consumed (a rule without a count is never used up)."""
        for rule in self.rules:
            if rule.matches(method, path, facts or {}):
                if rule.remaining is not None:
                    rule.remaining -= 1
                self.triggered.append({"rule": rule.id, "kind": rule.kind.value, "method": method, "path": path})
                return rule
        return None

    def armed(self) -> list[FaultRule]:
        return [r for r in self.rules if r.remaining != 0]

    def clear(self) -> None:
        """Disarm every rule (what already struck stays in `triggered`)."""
        self.rules.clear()

    def reset(self) -> None:
        self.rules.clear()
        self.triggered.clear()

    def to_json(self) -> dict[str, Any]:
        return {"rules": [r.to_json() for r in self.rules], "triggered": list(self.triggered)}


@dataclass
class Knobs:
    """Random faults as a dataclass of knobs (subclass with `@dataclass` and defaults). A field named `*_rate` is a
    probability in [0, 1], drawn per call from the emulator's seeded RNG (`rng.random() < rate`); an int is >= 0; a
    bool is a switch; a list holds strings. `update` checks every change before applying any."""

    def update(self, changes: Mapping[str, Any]) -> Self:
        checked = {name: self._checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)
        return self

    @classmethod
    def parse(cls, values: Mapping[str, Any]) -> Self:
        """The defaults with `values` applied (a setting's JSON)."""
        return cls().update(values)

    def to_json(self) -> dict[str, Any]:
        return {f.name: _copy(getattr(self, f.name)) for f in fields(self)}

    def _checked(self, name: str, value: Any) -> Any:
        known = {f.name for f in fields(self)}
        if name not in known:
            raise ValueError(f"unknown fault {name!r} (one of {sorted(known)})")
        current = getattr(self, name)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"fault {name!r} is true or false")
            return value
        if isinstance(current, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"fault {name!r} is a list of strings")
            return list(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"fault {name!r} is a number")
        if isinstance(current, float):
            if name.endswith("_rate") and not 0 <= value <= 1:
                raise ValueError(f"fault {name!r} is a probability in [0, 1]")
            return float(value)
        if value != int(value) or value < 0:
            raise ValueError(f"fault {name!r} is a whole number >= 0")
        return int(value)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


__all__ = ["FaultKind", "FaultRule", "Faults", "Knobs"]
