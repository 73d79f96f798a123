"""The lifecycle's side of a payout returned by reconciliation (`prizeflow_reconciliation.statements.PayoutReturns`):
two people decided the payout never reached the player, so paid → returned by the lifecycle's own transitions, in
reconciliation's transaction (the wallet is credited back by rewards on `PayoutReturned`)."""

from __future__ import annotations

from datetime import datetime

from prizeflow_contracts.providers import ProviderPayoutResult, ProviderPayoutStatus
from prizeflow_payouts.application.ports import PayoutRepository
from prizeflow_payouts.application.transitions import ChangeBuilder
from prizeflow_payouts.domain.state import PayoutState
from prizeflow_reconciliation.statements import HeldPayout, ReturnOutcome


class ReturnPaidPayouts:
    """`PayoutReturns` on the payouts repository bound to the same transaction."""

    def __init__(self, repo: PayoutRepository, builder: ChangeBuilder) -> None:
        self.repo = repo
        self.builder = builder

    async def locked(self, payout_id: str) -> HeldPayout | None:
        rec = await self.repo.get(payout_id, for_update=True)
        return None if rec is None else HeldPayout(rec.id, rec.state.value, rec.amount)

    async def mark_returned(self, payout_id: str, *, actor: str, at: datetime) -> ReturnOutcome:
        rec = await self.repo.get(payout_id, for_update=True)
        if rec is None or rec.state is not PayoutState.PAID:
            return ReturnOutcome.NOT_RETURNABLE
        result = ProviderPayoutResult(
            status=ProviderPayoutStatus.RETURNED,
            idempotency_key=rec.idempotency_key,
            provider_ref=rec.provider_ref,
            raw_status="reconciliation",
        )
        change = self.builder.from_result(
            rec, PayoutState.PAID, result, now=at, actor=actor, token=None, polls_status=False, cause=None
        )
        if change is None or change.to is not PayoutState.RETURNED:
            return ReturnOutcome.NOT_RETURNABLE
        if not await self.repo.apply([change], at=at):
            return ReturnOutcome.CHANGED
        return ReturnOutcome.RETURNED


__all__ = ["ReturnPaidPayouts"]
