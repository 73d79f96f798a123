"""The compliance records' ports (verification records and the risk policy's versions), next to their use cases.

`ComplianceStore` is one transaction's view (SQL in production, in memory in unit tests): what is read, written and
staged (outbox events, admin audit) through it commits together. The unit of work opens one (`ComplianceBooks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prizeflow_compliance.domain.policy import PolicyProposal, ProposalStatus
from prizeflow_compliance.domain.verification import VerificationRecord
from prizeflow_contracts.envelope import Envelope

if TYPE_CHECKING:
    from prizeflow_compliance.application.ports import ComplianceFacts, RescreenStore


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


@dataclass(frozen=True, slots=True)
class ComplianceStores:
    """Compliance's stores on the deployable's one transaction (`adapters.compliance_books.bind_compliance`): the
    payout gate reads `facts` in the payout's own transaction (docs/adr/0012)."""

    records: ComplianceStore
    rescreen: RescreenStore
    facts: ComplianceFacts


class ComplianceBooks(Protocol):
    """Any unit of work's books that carry compliance's stores (the deployable's `Books`)."""

    @property
    def compliance(self) -> ComplianceStores: ...


B_contra = TypeVar("B_contra", bound=ComplianceBooks, contravariant=True)


class VerificationChanged(Protocol[B_contra]):
    """Called in the transaction that records players' new verification status, with its books (the payout gate's
    `ResumeVerifiedPayouts.on_verification_changed`: a player's `kyc_required` holds move on with it, or not at
    all)."""

    async def __call__(self, books: B_contra, player_ids: Sequence[str], /) -> int: ...


__all__ = ["ComplianceBooks", "ComplianceStore", "ComplianceStores", "VerificationChanged"]
