"""The compliance records' ports (verification records and the risk policy's versions), next to their use cases.

`ComplianceStore` is one transaction's view (SQL in production, in memory in unit tests): what is read, written and
staged (outbox events, admin audit) through it commits together. The unit of work opens one (`ComplianceBooks`, in
`ports`, with the other stores it carries).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from prizeflow_compliance.domain.policy import PolicyProposal, ProposalStatus
from prizeflow_compliance.domain.verification import VerificationRecord
from prizeflow_contracts.envelope import Envelope


class ComplianceStore(Protocol):
    async def verification(self, player_id: str, *, for_update: bool = False) -> VerificationRecord | None: ...

    async def insert_verification(self, record: VerificationRecord, *, detail: str) -> bool:
        """A new record and its first history row; False (nothing written) if the player has one already."""
        ...

    async def update_verification(self, record: VerificationRecord, *, detail: str) -> None:
        """The record after a move (a new sequence) and its history row."""
        ...

    async def add_events(self, events: Sequence[Envelope[Any]]) -> None:
        """Stage events in the outbox of this transaction (an audit event's row is written with it)."""
        ...

    async def lock_policies(self) -> None:
        """Serialise the policy's proposals and decisions (versions are numbered in order, one active at most)."""
        ...

    async def active_proposal(self) -> PolicyProposal | None: ...

    async def proposal(self, proposal_id: int) -> PolicyProposal | None: ...

    async def next_policy_version(self) -> int: ...

    async def insert_proposal(self, proposal: PolicyProposal) -> int:
        """Stores a proposal; returns its id."""
        ...

    async def decide_proposal(
        self, proposal_id: int, *, to: ProposalStatus, by: str, reason: str | None, at: datetime
    ) -> None: ...

    async def supersede(self, proposal_id: int) -> None: ...

    async def announced_policy_version(self) -> int | None:
        """The last version published to rewards (None: none yet), locked until the transaction ends."""
        ...

    async def record_policy_announcement(self, version: int, at: datetime) -> None: ...


__all__ = ["ComplianceStore"]
