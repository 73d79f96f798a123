"""`SqlSignerResults`: the signer's answers handed to the rails that sign through it, in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope


@runtime_checkable
class SignerResultsSink(Protocol):
    """A provider that signs through the signer service: it takes TransactionSigned / SignatureRefused events,
    inside the consumer's inbox transaction (`session`)."""

    async def on_signer_results(self, session: AsyncSession, envelopes: Sequence[Envelope[Any]]) -> None: ...


class SqlSignerResults:
    """`SignerResults` in the transaction of `session`: each sink applies what is its own."""

    __slots__ = ("session", "sinks")

    def __init__(self, session: AsyncSession, sinks: Sequence[SignerResultsSink]) -> None:
        self.session = session
        self.sinks = tuple(sinks)

    async def record(self, envelopes: Sequence[Envelope[Any]]) -> None:
        for sink in self.sinks:
            await sink.on_signer_results(self.session, envelopes)


__all__ = ["SignerResultsSink", "SqlSignerResults"]
