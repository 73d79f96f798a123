"""ApplyComplianceEvents: what payouts publishes about who may be paid, and the claims waiting for it.

`RiskPolicyActivated` replaces the policy the next claim is decided with (a higher version only).
`PlayerVerificationChanged` keeps the player's status (a higher sequence only); on `verified` each claim of the
player held for verification (`kyc_required`) is assessed again with the current policy and facts: approved
(ClaimApproved + PayoutRequested, as a release) or held for what still holds it; on `failed` each is rejected
(`kyc_failed`) and its reservation voided. In the poll's transaction, audited as `system:verification`. A replay
or an older event changes nothing (the sequence), and a claim decided since it was held is left alone.

Only payouts says these things: an event from another source is refused. The players' verification locks are
taken first (a claim batch of theirs waits, or is waited for), then their waiting claims are locked with the poll's
other claims and their accounts with the poll's (`prepare`, then `SettlePayout`): one order, as every poll.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final

from prizeflow_contracts.envelope import Envelope, EventPayload, event_id_for, new_event
from prizeflow_contracts.errors import EventRefusal, refusing
from prizeflow_contracts.events.payouts import PlayerVerificationChanged, RiskPolicyActivated
from prizeflow_contracts.events.rewards import ClaimRejected, ClaimRejectionCode
from prizeflow_contracts.holds import claim_hold
from prizeflow_contracts.money import Money
from prizeflow_contracts.policy import VerificationStatus, evaluate
from prizeflow_contracts.providers import DestinationType
from prizeflow_rewards.application.books import Books
from prizeflow_rewards.application.claims.shared import approval, policy_facts
from prizeflow_rewards.application.common import Clock, audit, count_transfers, utcnow
from prizeflow_rewards.application.ports import ClaimDecision, IntakeFacts, IntakeQuery
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import Approve, Claim, ClaimStatus, Hold, reassess
from prizeflow_rewards.domain.ledger import AccountRef, void_of
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.logging import log_context
from prizeflow_runtime.principal import Principal, Role

log = logging.getLogger(__name__)

PAYOUTS_SOURCE: Final = "/prizeflow/payouts"
# The actor of the decisions a verification makes (audit events need a role: ops is the one that decides holds).
SYSTEM_VERIFICATION: Final = Principal("system:verification", frozenset({Role.OPS}))
_DECIDING: Final = frozenset({VerificationStatus.VERIFIED, VerificationStatus.FAILED})


@dataclass(frozen=True, slots=True)
class Waiting:
    """The claims a poll's verification changes may decide, and the accounts deciding them moves."""

    claim_ids: tuple[str, ...] = ()
    accounts: frozenset[AccountRef] = frozenset()


@dataclass
class ApplyComplianceEvents:
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    trusted_sources: frozenset[str] = frozenset({PAYOUTS_SOURCE})
    ACTS_ON: ClassVar[frozenset[str]] = frozenset(
        {PlayerVerificationChanged.event_type(), RiskPolicyActivated.event_type()}
    )

    def _ours(self, envs: Sequence[Envelope[EventPayload]]) -> list[Envelope[Any]]:
        """The poll's policy and verification events; one published by anyone but payouts is refused."""
        ours = [e for e in envs if isinstance(e.data, PlayerVerificationChanged | RiskPolicyActivated)]
        for env in ours:
            if env.source not in self.trusted_sources:
                raise EventRefusal(
                    "invalid_envelope",
                    f"{type(env.data).__name__} published by {env.source!r}: only payouts says who may be paid",
                    event_id=env.id,
                )
        return ours

    async def prepare(self, books: Books, envs: Sequence[Envelope[EventPayload]]) -> Waiting:
        """Before the poll's other locks: the verification locks of the players whose status the poll decides,
        then (unlocked) their claims waiting for it: the caller locks those with the poll's claims, and their
        accounts with the poll's."""
        players = sorted(
            {
                e.data.player_id
                for e in self._ours(envs)
                if isinstance(e.data, PlayerVerificationChanged) and e.data.status in _DECIDING
            }
        )
        if not players:
            return Waiting()
        await books.compliance.lock_players(players)
        waiting = await books.claims.waiting_for_verification(players)
        refs = {ref for c in waiting for ref in (accounts.wallet(c.player_id, c.asset), c.clearing)}
        return Waiting(tuple(c.id for c in waiting), frozenset(refs))

    async def apply(self, books: Books, envs: Sequence[Envelope[EventPayload]], waiting: Waiting) -> None:
        """The poll's policy and verification events, in poll order (after `prepare` and the poll's locks)."""
        for env in self._ours(envs):
            with log_context(correlation_id=env.correlationid, event_id=str(env.id)), refusing(env.id):
                data = env.data
                if isinstance(data, RiskPolicyActivated):
                    if await books.compliance.activate(data):
                        log.info("risk policy version %d active", data.policy.version)
                    continue
                assert isinstance(data, PlayerVerificationChanged)
                if not await books.compliance.record_verification(data):
                    continue  # a replay, or older than the status kept
                if data.status in _DECIDING and waiting.claim_ids:
                    await self._decide(books, env, data, waiting)

    async def _decide(
        self, books: Books, env: Envelope[Any], data: PlayerVerificationChanged, waiting: Waiting
    ) -> list[Claim]:
        # Locked already (with the poll's claims): read again as the poll's earlier events left them.
        locked = await books.claims.lock_many(waiting.claim_ids)
        claims = [
            c
            for _, c in sorted(locked.items())
            if c.player_id == data.player_id and c.status is ClaimStatus.HELD and _resumed_by_verification(c)
        ]
        if not claims:
            return []
        if data.status is VerificationStatus.VERIFIED:
            await self._resume(books, env, claims)
        else:
            await self._refuse(books, env, claims)
        return claims

    async def _resume(self, books: Books, env: Envelope[Any], claims: list[Claim]) -> None:
        """Each claim assessed again with the current policy and facts (its own amount left out of the sums, the
        others waiting with it counted): approved, or still held for what still holds it."""
        now = self.clock()
        policy, statuses = await books.compliance.intake([claims[0].player_id])
        verification = statuses.get(claims[0].player_id, VerificationStatus.NOT_STARTED)
        facts = await books.claims.intake_facts(
            [
                IntakeQuery(c.id, c.player_id, c.asset, c.amount, str(c.destination.get("type", "")), c.destination_key)
                for c in claims
            ],
            day=now - timedelta(days=1),
            velocity=now,
            window=now,
            now=now,
            windows=sorted(policy.windows()),
        )
        events: list[Envelope[Any]] = []
        for claim, counted in zip(claims, facts, strict=True):
            known = _without(counted, claim, now)
            seen = known.destination_first_seen
            verdict = evaluate(
                policy,
                policy_facts(
                    known,
                    asset=claim.asset,
                    amount=claim.amount,
                    destination_type=DestinationType(claim.destination["type"]),
                    verification=verification,
                    destination_age_s=(now - seen).total_seconds() if seen is not None else None,
                ),
            )
            decision = reassess(verdict, risk_flagged=known.risk_flagged)
            if isinstance(decision, Approve):
                await books.claims.decide(
                    claim.id, ClaimDecision(ClaimStatus.APPROVED, now, SYSTEM_VERIFICATION.user_id)
                )
                events += approval(
                    claim,
                    approved_by=SYSTEM_VERIFICATION.user_id,
                    requested_by=SYSTEM_VERIFICATION.user_id,
                    source=self.source,
                    at=now,
                )
                await self._audit(books, claim, "claim.release", ClaimStatus.APPROVED, None, env)
                self._count("approved")
            else:
                code, detail, version = decision.code.value, decision.detail, verdict.policy_version
                await books.claims.rehold(claim.id, code=code, detail=detail, policy_version=version)
                await self._audit(books, claim, "claim.hold", ClaimStatus.HELD, decision, env)
                self._count("held")
        if events:
            await books.outbox.stage(events)

    async def _refuse(self, books: Books, env: Envelope[Any], claims: list[Claim]) -> None:
        """Each claim rejected (`kyc_failed`), its reservation back in the wallet, in one ledger batch."""
        now = self.clock()
        count_transfers(self.metrics, await books.ledger.apply([void_of(c.pending) for c in claims]))
        code = ClaimRejectionCode.KYC_FAILED
        events: list[Envelope[Any]] = []
        for claim in claims:
            await books.claims.decide(
                claim.id, ClaimDecision(ClaimStatus.REJECTED, now, SYSTEM_VERIFICATION.user_id, code.value)
            )
            rejected = ClaimRejected(
                claim_id=claim.id,
                player_id=claim.player_id,
                amount=Money(asset=claim.asset, amount=claim.amount),
                code=code,
                detail="the player's identity verification failed",
                rejected_by=SYSTEM_VERIFICATION.user_id,
                rejected_at=now,
            )
            events.append(
                new_event(
                    rejected,
                    source=self.source,
                    correlation_id=claim.correlation_id,
                    subject=claim.id,
                    event_id=event_id_for("ClaimRejected", claim.id),
                )
            )
            await self._audit(books, claim, "claim.reject", ClaimStatus.REJECTED, None, env)
            self._count("rejected_kyc_failed")
        await books.outbox.stage(events)

    async def _audit(  # noqa: PLR0917 - the decision and what it answers
        self,
        books: Books,
        claim: Claim,
        action: str,
        status: ClaimStatus,
        hold: Hold | None,
        env: Envelope[Any],
    ) -> None:
        after = {"status": status.value}
        if hold is not None:
            after["hold_code"] = hold.code.value
        data = env.data
        assert isinstance(data, PlayerVerificationChanged)
        await audit(
            books.outbox,
            source=self.source,
            actor=SYSTEM_VERIFICATION,
            action=action,
            target_type="claim",
            target_id=claim.id,
            correlation_id=claim.correlation_id,
            reason=f"identity verification {data.status.value} (sequence {data.sequence}, event {env.id})",
            before={"status": claim.status.value, "hold_code": claim.hold_code or ""},
            after=after,
        )

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.claims.labels(outcome).inc()


def _resumed_by_verification(claim: Claim) -> bool:
    """Held for a kind the player's verification releases (`CLAIM_HOLD_KINDS`)."""
    kind = claim_hold(claim.hold_code)
    return kind is not None and kind.resumed_by_verification


def _without(known: IntakeFacts, claim: Claim, now: datetime) -> IntakeFacts:
    """The policy's sums without the claim itself: it is in them (held, live, in the windows it was made in), and a
    claim is assessed against the others."""

    def own(window: int, value: int) -> int:
        return value if claim.created_at > now - timedelta(seconds=window) else 0

    return replace(
        known,
        player_totals={w: t - own(w, claim.amount) for w, t in known.player_totals.items()},
        player_counts={w: c - own(w, 1) for w, c in known.player_counts.items()},
        destination_totals={w: t - own(w, claim.amount) for w, t in known.destination_totals.items()},
    )


__all__ = ["PAYOUTS_SOURCE", "SYSTEM_VERIFICATION", "ApplyComplianceEvents", "Waiting"]
