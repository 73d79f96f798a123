"""The read side's stores: a player's wallets and their movements, and what rewards recorded of one flow."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prizeflow_rewards.domain.ledger import Balance, TransferKind
from prizeflow_rewards.domain.topups import TopUp


@dataclass(frozen=True, slots=True)
class WalletMovement:
    """A transfer that moved a wallet of the player, as the wallet's history shows it."""

    seq: int
    transfer_id: uuid.UUID
    kind: str
    asset: str
    amount: int
    incoming: bool
    pending: bool
    resolves: uuid.UUID | None
    business_key: str
    created_at: datetime


class WalletQueries(Protocol):
    async def balances(self, player_id: str) -> list[tuple[str, Balance]]:
        """(asset, balance) of the player's wallets any transfer moved, by asset."""
        ...

    async def wallet_ids(self, player_id: str, *, asset: str | None) -> list[uuid.UUID]:
        """The player's wallet accounts (in `asset` only, if given)."""
        ...

    async def movements(
        self,
        wallet_ids: Sequence[uuid.UUID],
        *,
        kind: TransferKind | None,
        before_seq: int | None,
        limit: int,
    ) -> list[WalletMovement]:
        """Transfers moving any of these wallets: newest first, at most `limit`, older than `before_seq` if given."""
        ...


@dataclass(frozen=True, slots=True)
class ClaimTrail:
    """A claim's milestones (never its destination)."""

    claim_id: str
    asset: str
    amount: int
    status: str
    hold_code: str | None
    rejection_code: str | None
    created_at: datetime
    decided_at: datetime | None
    settled_at: datetime | None
    payout_id: str | None


@dataclass(frozen=True, slots=True)
class HeldRoundTrail:
    round_id: str
    campaign_id: str
    asset: str
    total: int
    reason: str
    held_at: datetime
    released_at: datetime | None


class FlowQueries(Protocol):
    """What rewards recorded of one flow (a correlation id), for its timeline; at most `limit` of each."""

    async def claims_of(self, correlation_id: str, *, limit: int) -> list[ClaimTrail]: ...

    async def held_rounds_of(self, correlation_id: str, *, limit: int) -> list[HeldRoundTrail]: ...

    async def top_ups_of(self, correlation_id: str, *, limit: int) -> list[TopUp]: ...


__all__ = ["ClaimTrail", "FlowQueries", "HeldRoundTrail", "WalletMovement", "WalletQueries"]
