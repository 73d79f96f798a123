"""Stores every part of rewards uses in its transaction: the outbox, the contradictions kept for a person, and the
database backend running the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope, StagedEvent
from prizeflow_rewards.domain.contradictions import Contradiction


class Outbox(Protocol):
    async def stage(self, events: Sequence[Envelope[Any] | StagedEvent]) -> None:
        """Stage events in the transaction (one write, in order): published only if it commits. A hot path hands
        them encoded already (`stage_event`)."""
        ...


class Contradictions(Protocol):
    async def record(self, contradiction: Contradiction) -> bool:
        """Keep it (once per subject, aggregate and source); False if that source said it before."""
        ...

    async def recent(self, *, limit: int) -> list[dict[str, Any]]:
        """The newest first, as operators read them."""
        ...


class Backend(Protocol):
    """The database server process running the transaction: what a COMMIT that lost its connection was running on
    (`LostCommits.end`)."""

    async def pid(self) -> int:
        """Known to the connection already: no round trip."""
        ...


__all__ = ["Backend", "Contradictions", "Outbox"]
