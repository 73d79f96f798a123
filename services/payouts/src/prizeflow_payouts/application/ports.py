"""Ports of the payouts use cases, next to them (STYLE: ports are Protocols beside the use cases).

`RewardPayoutProvider` itself lives in the contracts; these are optional extensions a provider may add and
the worker discovers at run time, so a provider that has neither still fits unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from prizeflow_contracts.errors import PayoutProviderError
from prizeflow_contracts.providers import PayoutInstruction, ProviderPayoutResult

CreateOutcome = ProviderPayoutResult | PayoutProviderError


@runtime_checkable
class BatchPayoutProvider(Protocol):
    """A provider that creates many payouts in one call (a batch API, one Stellar transaction...).

    Same rules as `create_payout`, per instruction: a definitive answer is a result, no definitive answer is a
    `PayoutProviderError` in that instruction's slot. The answer has one slot per instruction, in order.
    """

    async def create_payouts(self, instructions: Sequence[PayoutInstruction]) -> Sequence[CreateOutcome]: ...


@runtime_checkable
class ManagedProvider(Protocol):
    """A provider holding connections: started before the worker runs, closed at shutdown."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


__all__ = ["BatchPayoutProvider", "CreateOutcome", "ManagedProvider"]
