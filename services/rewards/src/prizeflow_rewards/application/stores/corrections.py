"""The corrections' store: two-person compensating transfers."""

from __future__ import annotations

from typing import Protocol

from prizeflow_rewards.domain.corrections import Correction, CorrectionStatus


class LedgerCorrections(Protocol):
    """Two-person corrections. Locks: a correction row before any ledger account."""

    async def add(self, correction: Correction) -> bool:
        """False: a correction with this reference exists (nothing written)."""
        ...

    async def by_reference(self, reference: str) -> Correction | None: ...

    async def get(self, correction_id: str, *, lock: bool = False) -> Correction | None: ...

    async def list(self, *, status: CorrectionStatus | None, limit: int) -> list[Correction]:
        """Newest first."""
        ...

    async def decide(self, correction: Correction) -> None:
        """Store `correction`'s decision (status, who, when, why, its transfer): the database refuses a second one."""
        ...


__all__ = ["LedgerCorrections"]
