"""ReviewHold: ops decide a held claim, release it (approve → PayoutRequested) or reject it (its reservation goes
back to the wallet). Each decision is one transaction of its own (`uow.run`), with its events and audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prizeflow_contracts.envelope import event_id_for, new_event
from prizeflow_contracts.events.rewards import ClaimRejected, ClaimRejectionCode
from prizeflow_contracts.money import Money
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims.shared import ClaimError, approval
from prizeflow_rewards.application.common import Clock, audit, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import ClaimDecision
from prizeflow_rewards.domain.claims import TRANSITIONS, Claim, ClaimStatus
from prizeflow_rewards.domain.ledger import void_of
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.principal import Principal
from prizeflow_runtime.uow import UnitOfWork


@dataclass
class ReviewHold:
    uow: UnitOfWork[Books]
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow

    async def release(self, actor: Principal, claim_id: str, *, reason: str | None) -> Claim:
        async def release(books: Books) -> Claim:
            with ledger_refusals():
                claim = await self._held(books, actor, claim_id, ClaimStatus.APPROVED)
                now = self.clock()
                await self._decide(books, claim, ClaimStatus.APPROVED, actor, now)
                events = approval(
                    claim, approved_by=actor.user_id, requested_by=actor.user_id, source=self.source, at=now
                )
                await books.outbox.stage(events)
                await self._audit(books, actor, claim, "claim.release", ClaimStatus.APPROVED, reason=reason)
                return await _reload(books, claim_id)

        return await self.uow.run(release)

    async def reject(self, actor: Principal, claim_id: str, *, reason: str) -> Claim:
        async def reject(books: Books) -> Claim:
            with ledger_refusals():
                claim = await self._held(books, actor, claim_id, ClaimStatus.REJECTED)
                now = self.clock()
                result = await books.ledger.apply([void_of(claim.pending)])
                count_transfers(self.metrics, result)
                code = ClaimRejectionCode.REJECTED_BY_REVIEWER
                await self._decide(books, claim, ClaimStatus.REJECTED, actor, now, rejection=code)
                rejected = ClaimRejected(
                    claim_id=claim.id,
                    player_id=claim.player_id,
                    amount=Money(asset=claim.asset, amount=claim.amount),
                    code=code,
                    detail=reason,
                    rejected_by=actor.user_id,
                    rejected_at=now,
                )
                event_id = event_id_for("ClaimRejected", claim.id)
                await books.outbox.stage(
                    [
                        new_event(
                            rejected,
                            source=self.source,
                            correlation_id=claim.correlation_id,
                            subject=claim.id,
                            event_id=event_id,
                        )
                    ]
                )
                await self._audit(books, actor, claim, "claim.reject", ClaimStatus.REJECTED, reason=reason)
                return await _reload(books, claim_id)

        return await self.uow.run(reject)

    @staticmethod
    async def _held(books: Books, actor: Principal, claim_id: str, target: ClaimStatus) -> Claim:
        claim = await books.claims.get(claim_id, lock=True)
        if claim is None:
            raise ClaimError(ErrorKind.NOT_FOUND, "claim_not_found", f"no claim {claim_id}")
        if claim.player_id == actor.user_id:  # as payouts' check_decider: the player a claim pays never decides it
            raise ClaimError(ErrorKind.FORBIDDEN, "self_review", "nobody reviews a held claim that pays them")
        if not TRANSITIONS.allows(claim.status, target):
            raise ClaimError(
                ErrorKind.CONFLICT, "illegal_transition", f"claim {claim_id} is {claim.status.value}, not held"
            )
        return claim

    @staticmethod
    async def _decide(
        books: Books,
        claim: Claim,
        status: ClaimStatus,
        actor: Principal,
        at: datetime,
        *,
        rejection: ClaimRejectionCode | None = None,
    ) -> None:
        decision = ClaimDecision(status, at, actor.user_id, rejection.value if rejection else None)
        await books.claims.decide(claim.id, decision)

    async def _audit(
        self, books: Books, actor: Principal, claim: Claim, action: str, status: ClaimStatus, *, reason: str | None
    ) -> None:
        await audit(
            books.outbox,
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


async def _reload(books: Books, claim_id: str) -> Claim:
    claim = await books.claims.get(claim_id)
    assert claim is not None
    return claim


__all__ = ["ReviewHold"]
