"""The sandbox's scenarios: what a payout to it does, by name (the table in `sandbox.py`'s docstring); the
built-in ones, and those a providers file adds or overrides (`options.scenarios`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from prizeflow_contracts.errors import PayoutErrorCode
from prizeflow_payouts.provider_spec import ProviderConfigError


class Outcome(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    FAILURE = "failure"
    OUTAGE = "outage"
    TIMEOUT_AFTER_SUCCESS = "timeout_after_success"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    outcome: Outcome
    code: PayoutErrorCode | None = None
    fail_times: int | None = None  # failure with a retryable code: only the first N creates of a key fail
    polls: int = 2  # pending: pending answers before paid; -1 = forever
    duration_ms: int = 2000  # outage window
    latency_ms: int = 500  # slow


def builtin_scenarios() -> dict[str, Scenario]:
    s = {
        "success": Scenario("success", Outcome.SUCCESS),
        "pending": Scenario("pending", Outcome.PENDING, polls=2),
        "pending_forever": Scenario("pending_forever", Outcome.PENDING, polls=-1),
        "slow": Scenario("slow", Outcome.SLOW, latency_ms=500),
        "flaky": Scenario("flaky", Outcome.FAILURE, code=PayoutErrorCode.PROVIDER_UNAVAILABLE, fail_times=2),
        "outage": Scenario("outage", Outcome.OUTAGE, duration_ms=2000),
        "timeout_after_success": Scenario("timeout_after_success", Outcome.TIMEOUT_AFTER_SUCCESS),
    }
    for code in PayoutErrorCode:
        s[f"fail_{code.value}"] = Scenario(f"fail_{code.value}", Outcome.FAILURE, code=code)
    return s


def parse_scenarios(raw: Mapping[str, Any], provider: str) -> dict[str, Scenario]:
    scenarios = builtin_scenarios()
    for name, body in raw.items():
        if not isinstance(body, dict):
            raise ProviderConfigError(f"provider {provider!r}: scenario {name!r} must be a mapping")
        allowed = {"outcome", "code", "fail_times", "polls", "duration_ms", "latency_ms"}
        if set(body) - allowed:
            raise ProviderConfigError(f"provider {provider!r}: scenario {name!r}: unknown keys {set(body) - allowed}")
        try:
            outcome = Outcome(str(body.get("outcome")))
            code = PayoutErrorCode(body["code"]) if body.get("code") is not None else None
        except ValueError as err:
            raise ProviderConfigError(f"provider {provider!r}: scenario {name!r}: {err}") from None
        if outcome is Outcome.FAILURE and code is None:
            raise ProviderConfigError(f"provider {provider!r}: scenario {name!r}: a failure needs a `code`")
        base = Scenario(str(name), outcome, code)
        scenarios[str(name)] = replace(
            base,
            fail_times=body.get("fail_times"),
            polls=int(body.get("polls", base.polls)),
            duration_ms=int(body.get("duration_ms", base.duration_ms)),
            latency_ms=int(body.get("latency_ms", base.latency_ms)),
        )
    return scenarios


__all__ = ["Outcome", "Scenario", "builtin_scenarios", "parse_scenarios"]
