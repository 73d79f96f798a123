"""The provider conformance kit: every payout rail passes the same suite (`tests/conformance`), through the
payouts service, on real PostgreSQL and Kafka.

Adding a provider means adding a module here with its `ProviderHarness` subclass (how to build the rail, steer
its next payout, complete it, produce its webhooks, count what it really paid, what it cannot do): every concrete
harness a module of this package defines is in `HARNESSES`, found, not listed. Then `pytest tests/conformance -k
<name>`.
"""

from __future__ import annotations

import inspect
import sys
from typing import Final

from prizeflow_contracts.discovery import modules
from prizeflow_testkit.conformance.base import (
    DISCREPANCIES,
    FINAL_STATES,
    WEBHOOK_SOURCE,
    Behaviour,
    Claims,
    Kit,
    KitEnv,
    LogCapture,
    ProviderHarness,
    Scenario,
    provider_event,
    rendered,
)


def _defined() -> dict[str, type[ProviderHarness]]:
    """Each concrete `ProviderHarness` a module of this package defines, by its name, in module order."""
    found: dict[str, type[ProviderHarness]] = {}
    for module in modules(sys.modules[__name__]):
        for harness in vars(module).values():
            if (
                inspect.isclass(harness)
                and issubclass(harness, ProviderHarness)
                and harness.__module__ == module.__name__
                and not inspect.isabstract(harness)
            ):
                if harness.name in found:
                    raise RuntimeError(f"two conformance harnesses are named {harness.name}")
                found[harness.name] = harness
    return found


HARNESSES: Final[dict[str, type[ProviderHarness]]] = _defined()

__all__ = [
    "DISCREPANCIES",
    "FINAL_STATES",
    "HARNESSES",
    "WEBHOOK_SOURCE",
    "Behaviour",
    "Claims",
    "Kit",
    "KitEnv",
    "LogCapture",
    "ProviderHarness",
    "Scenario",
    "provider_event",
    "rendered",
]
