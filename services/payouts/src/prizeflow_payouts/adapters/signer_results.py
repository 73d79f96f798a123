"""`SqlSignerResults`: the signer's answers handed to the rails that sign through it, in the consumer's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_contracts.envelope import Envelope
from prizeflow_payouts.application.rail import SignerSink


class SqlSignerResults:
    """`SignerResults` in the transaction of `session`: each rail's `signer_sink` part applies what is its own."""

    __slots__ = ("session", "sinks")

    def __init__(self, session: AsyncSession, sinks: Sequence[SignerSink]) -> None:
        self.session = session
        self.sinks = tuple(sinks)

    async def record(self, envelopes: Sequence[Envelope[Any]]) -> None:
        for sink in self.sinks:
            await sink.on_signer_results(self.session, envelopes)


__all__ = ["SqlSignerResults"]
