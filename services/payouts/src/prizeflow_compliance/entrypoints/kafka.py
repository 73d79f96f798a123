"""Compliance's Kafka handler: `VerificationEventReceived` on the deployable's unit of work (the poll's `books`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from prizeflow_compliance.application.ports import ComplianceBooks
from prizeflow_compliance.application.verification import ApplyVerificationEvent
from prizeflow_contracts.envelope import Envelope
from prizeflow_contracts.events.webhooks import VerificationEventReceived

B = TypeVar("B", bound=ComplianceBooks)


class VerificationEventsHandler(Generic[B]):
    """`VerificationEventReceived` from the webhooks topic, in its own consumer group (inbox dedup, retries, DLQ): a
    vendor outage retries and dead-letters these, and never holds back the payouts' provider events. Every other
    kind on the topic is another consumer's: seen, nothing to do."""

    def __init__(self, apply: ApplyVerificationEvent[B]) -> None:
        self.apply = apply

    async def __call__(self, books: B, envelopes: Sequence[Envelope[Any]]) -> None:
        mine = [e for e in envelopes if isinstance(e.data, VerificationEventReceived)]
        if mine:
            await self.apply.execute(books, mine)


__all__ = ["VerificationEventsHandler"]
