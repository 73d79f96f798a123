"""Each rail's balance at its provider, read now: for people (`GET /providers`, the console's FX desk page) and for
the gauges job (`application/gauges.py`, which keeps a rail's last figures when it cannot answer).

Only rails that pay from an account they hold at the provider report one (`Rail.balance`: RazorpayX for the upi
rail). The rails are read concurrently, each within `timeout_s`; a rail that cannot answer says why (its error's
type, never its message: a provider's message may carry an account detail), and the others still answer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prizeflow_payouts.application.ports import ProviderBalance
from prizeflow_payouts.application.registry import ProviderEntry, ProviderRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RailBalance:
    """One rail's answer: its balances (one per currency), or why there is none."""

    provider: str
    read_at: datetime
    balances: tuple[ProviderBalance, ...] = ()
    unavailable: str | None = None

    def public(self) -> dict[str, Any]:
        if self.unavailable is not None:
            return {"read_at": self.read_at.isoformat(), "unavailable": self.unavailable}
        return {
            "read_at": self.read_at.isoformat(),
            "balances": [
                {
                    "currency": b.currency,
                    "available": b.available,
                    "low_below": b.low_below,
                    "low": b.low_below is not None and b.available < b.low_below,
                }
                for b in self.balances
            ],
        }


async def read_balances(registry: ProviderRegistry, *, timeout_s: float | None = 3.0) -> dict[str, RailBalance]:
    """Every rail that reports a balance, by provider name, read concurrently (`timeout_s` None: each as long as
    its own client allows, what the gauges job waits)."""
    entries = [e for e in registry if e.rail.balance is not None]
    answers = await asyncio.gather(*(_read(e, timeout_s) for e in entries))
    return {a.provider: a for a in answers}


async def _read(entry: ProviderEntry, timeout_s: float | None) -> RailBalance:
    rail = entry.rail.balance
    assert rail is not None
    try:
        balances = await asyncio.wait_for(rail.balances(), timeout_s)
    except Exception as err:  # noqa: BLE001 - one rail's outage never hides the others'
        log.warning("balance of %s unavailable: %s", entry.name, type(err).__name__)
        return RailBalance(entry.name, datetime.now(UTC), unavailable=type(err).__name__)
    return RailBalance(entry.name, datetime.now(UTC), tuple(balances))


__all__ = ["RailBalance", "read_balances"]
