"""The lifecycle's side of what reconciliation decides (`prizeflow_reconciliation.statements.PayoutReturns`), in
reconciliation's transaction: a payout two people decided never reached the player goes paid → returned by the
lifecycle's own transitions (the wallet is credited back by rewards on `PayoutReturned`); a fee a statement was the
first to carry is recorded on the payout, on record in its history."""

from __future__ import annotations

from collections.abc import Sequence
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

    async def record_fees(
        self, provider: str, learned: Sequence[tuple[str, str, int]], *, run_id: str, at: datetime
    ) -> int:
        if not learned:
            return 0
        return await self.repo.record_statement_fees(provider, learned, run_id=run_id, at=at)


__all__ = ["ReturnPaidPayouts"]
