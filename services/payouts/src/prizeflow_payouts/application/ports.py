"""Ports of the payouts use cases, next to them (STYLE: ports are Protocols beside the use cases).

`RewardPayoutProvider` itself lives in the contracts; these are optional extensions a provider may add and
the worker discovers at run time, so a provider that has neither still fits unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.errors import PayoutError, PayoutProviderError
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


@runtime_checkable
class SignerResultsSink(Protocol):
    """A provider that signs through the signer service: it takes TransactionSigned / SignatureRefused events,
    inside the consumer's inbox transaction (`session`)."""

    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None: ...


@runtime_checkable
class PayoutValidator(Protocol):
    """A provider that can refuse a payout before anything is created (the API answers problem details)."""

    def validate(self, instruction: PayoutInstruction) -> PayoutError | None: ...


class ExternalSigningError(Exception):
    """An externally signed envelope was refused; `code` is stable, `status` the HTTP status to answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


@runtime_checkable
class ExternalSigning(Protocol):
    """A provider whose transactions an operator may sign out of band (signer backend `external`)."""

    async def unsigned_transaction(self, payout_id: str) -> dict[str, Any] | None: ...

    async def submit_signed(self, payout_id: str, signed_xdr: str) -> Any: ...


__all__ = [
    "BatchPayoutProvider",
    "CreateOutcome",
    "ExternalSigning",
    "ExternalSigningError",
    "ManagedProvider",
    "PayoutValidator",
    "SignerResultsSink",
]
