"""ReleaseHeldRounds: an admin pays a campaign's held rounds once its pool can (after a top-up, or a resume)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.campaigns import CampaignError, campaign_not_found
from prizeflow_rewards.application.common import audit, ledger_refusals
from prizeflow_rewards.application.rounds import RoundMoney
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.campaigns import CampaignStatus
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork


@dataclass
class ReleaseHeldRounds:
    """Pay held rounds of a campaign, oldest first, while the pool covers them; the rest stay held. One
    transaction (`uow.run`), audited."""

    uow: UnitOfWork[Books]
    rounds: RoundMoney

    async def __call__(self, actor: Principal, *, campaign_id: str, correlation_id: str) -> dict[str, Any]:
        async def release(books: Books) -> dict[str, Any]:
            with ledger_refusals():
                return await self._release(books, actor, campaign_id=campaign_id, correlation_id=correlation_id)

        return await self.uow.run(release)

    async def _release(
        self, books: Books, actor: Principal, *, campaign_id: str, correlation_id: str
    ) -> dict[str, Any]:
        campaign = await books.campaigns.get(campaign_id, lock=True)
        if campaign is None:
            raise campaign_not_found(campaign_id)
        if campaign.status is not CampaignStatus.ACTIVE:
            raise CampaignError(
                ErrorKind.CONFLICT, "campaign_not_active", f"campaign {campaign_id} is {campaign.status.value}"
            )
        held = await books.allocations.lock_held(campaign_id)
        # The pool and every wallet any of these rounds pays, locked once in order before the first is paid
        # (their fees went to revenue when they were settled).
        await books.ledger.declare(
            {
                ref
                for h in held
                for ref in (
                    accounts.pool(campaign.id, h.event.data.asset),
                    *(accounts.wallet(a.player_id, h.event.data.asset) for a in h.event.data.allocations),
                )
            }
        )
        released: list[str] = []
        for h in held:
            if not await self.rounds.pay_from_pool(books, h.event, hold_if_short=False):
                break
            await books.allocations.mark_released(h.round_id, by=actor.user_id)
            released.append(h.round_id)
        still = len(held) - len(released)
        if released:
            await audit(
                books.outbox,
                source=self.rounds.source,
                actor=actor,
                action="campaign.release_held",
                target_type="campaign",
                target_id=campaign_id,
                correlation_id=correlation_id,
                after={"released_rounds": ",".join(released)[:1000], "still_held": still},
            )
        return {"campaign_id": campaign_id, "released": released, "still_held": still}


__all__ = ["ReleaseHeldRounds"]
