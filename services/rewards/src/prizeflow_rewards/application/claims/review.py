"""ReviewHold: ops decide a held claim, release it (approve → PayoutRequested) or reject it (its reservation goes
back to the wallet)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from prizeflow_contracts.envelope import event_id_for, new_event
from prizeflow_contracts.events.rewards import ClaimRejected, ClaimRejectionCode
from prizeflow_contracts.money import Money
from prizeflow_rewards.application.claims.shared import ClaimError, approval
from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import ClaimDecision, Ledger, Stores, Tx
from prizeflow_rewards.domain.claims import Claim, ClaimStatus, can_move
from prizeflow_rewards.domain.ledger import void_of
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.principal import Principal


@dataclass
class ReviewHold:
    ledger: Ledger
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def release(self, tx: Tx, actor: Principal, claim_id: str, *, reason: str | None) -> Claim:
        with ledger_refusals():
            claim = await self._held(tx, actor, claim_id, ClaimStatus.APPROVED)
            now = self.clock()
            await self._decide(tx, claim, ClaimStatus.APPROVED, actor, now)
            events = approval(claim, approved_by=actor.user_id, requested_by=actor.user_id, source=self.source, at=now)
            await self.stores.outbox.stage(tx, events)
            await self._audit(tx, actor, claim, "claim.release", ClaimStatus.APPROVED, reason=reason)
            return await self._reload(tx, claim_id)

    async def reject(self, tx: Tx, actor: Principal, claim_id: str, *, reason: str) -> Claim:
        with ledger_refusals():
            claim = await self._held(tx, actor, claim_id, ClaimStatus.REJECTED)
            now = self.clock()
            result = await self.ledger.apply(tx, [void_of(claim.pending)])
            count_transfers(self.metrics, result)
            code = ClaimRejectionCode.REJECTED_BY_REVIEWER
            await self._decide(tx, claim, ClaimStatus.REJECTED, actor, now, rejection=code)
            rejected = ClaimRejected(
                claim_id=claim.id,
                player_id=claim.player_id,
                amount=Money(asset=claim.asset, amount=claim.amount),
                code=code,
                detail=reason,
                rejected_by=actor.user_id,
                rejected_at=now,
            )
            await self.stores.outbox.stage(
                tx,
                [
                    new_event(
                        rejected,
                        source=self.source,
                        correlation_id=claim.correlation_id,
                        subject=claim.id,
                        event_id=event_id_for("ClaimRejected", claim.id),
                    )
                ],
            )
            await self._audit(tx, actor, claim, "claim.reject", ClaimStatus.REJECTED, reason=reason)
            return await self._reload(tx, claim_id)

    async def _held(self, tx: Tx, actor: Principal, claim_id: str, target: ClaimStatus) -> Claim:
        claim = await self.stores.claims.get(tx, claim_id, lock=True)
        if claim is None:
            raise ClaimError(ErrorKind.NOT_FOUND, "claim_not_found", f"no claim {claim_id}")
        if claim.player_id == actor.user_id:  # as payouts' check_decider: the player a claim pays never decides it
            raise ClaimError(ErrorKind.FORBIDDEN, "self_review", "nobody reviews a held claim that pays them")
        if not can_move(claim.status, target):
            raise ClaimError(
                ErrorKind.CONFLICT, "illegal_transition", f"claim {claim_id} is {claim.status.value}, not held"
            )
        return claim

    async def _decide(
        self,
        tx: Tx,
        claim: Claim,
        status: ClaimStatus,
        actor: Principal,
        at: datetime,
        *,
        rejection: ClaimRejectionCode | None = None,
    ) -> None:
        decision = ClaimDecision(status, at, actor.user_id, rejection.value if rejection else None)
        await self.stores.claims.decide(tx, claim.id, decision)

    async def _audit(
        self, tx: Tx, actor: Principal, claim: Claim, action: str, status: ClaimStatus, *, reason: str | None
    ) -> None:
        await audit(
            self.stores.outbox,
            tx,
            source=self.source,
            actor=actor,
            action=action,
            target_type="claim",
            target_id=claim.id,
            correlation_id=claim.correlation_id,
            reason=reason,
            before={"status": claim.status.value, "hold_code": claim.hold_code or ""},
            after={"status": status.value},
        )

    async def _reload(self, tx: Tx, claim_id: str) -> Claim:
        claim = await self.stores.claims.get(tx, claim_id)
        assert claim is not None
        return claim
