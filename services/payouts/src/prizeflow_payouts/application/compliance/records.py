"""The compliance records' ports (verification records and the risk policy's versions), next to their use cases.

`ComplianceStore` is one transaction's view (SQL in production, in memory in unit tests): what is read, written and
staged (outbox events, admin audit) through it commits together. `ComplianceTransactions` opens one.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from prizeflow_contracts.envelope import Envelope
from prizeflow_payouts.domain.compliance.policy import PolicyProposal, ProposalStatus
from prizeflow_payouts.domain.compliance.verification import VerificationRecord


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


class VerificationChanged(Protocol):
    """Called in the transaction that records players' new verification status (the payout gate's
    `VerificationHook`: a player's `kyc_required` holds move on with it, or not at all)."""

    async def __call__(self, store: ComplianceStore, player_ids: Sequence[str]) -> int: ...


class ComplianceTransactions(Protocol):
    """Opens a transaction: the store bound to it, committed when the block exits without an error."""

    def __call__(self) -> AbstractAsyncContextManager[ComplianceStore]: ...


__all__ = ["ComplianceStore", "ComplianceTransactions", "VerificationChanged"]
