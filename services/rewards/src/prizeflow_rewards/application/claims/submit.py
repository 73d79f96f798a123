"""SubmitClaim: a player claims a redeemable balance to a payout destination.

A claim is checked under the wallet's row lock (concurrent claims on one wallet queue, none overdraws it),
taken together with the clearing account its reservation credits: one ordered lock, up front. An approved or
held claim reserves its amount with a pending transfer wallet → clearing; approval emits PayoutRequested.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from prizeflow_contracts.envelope import event_id_for, new_event
from prizeflow_contracts.events.rewards import ClaimHeld
from prizeflow_contracts.money import ASSETS, Money
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.application.claims.shared import ClaimError, approval
from prizeflow_rewards.application.common import Clock, count_transfers, ledger_refusals, utcnow
from prizeflow_rewards.application.ports import Ledger, Stores, Tx
from prizeflow_rewards.domain import accounts
from prizeflow_rewards.domain.claims import (
    Approve,
    Claim,
    ClaimFacts,
    ClaimLimits,
    ClaimStatus,
    Hold,
    RefusalCode,
    Refuse,
    assess,
    destination_key,
    reservation,
)
from prizeflow_rewards.domain.ledger import LedgerError
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.auth import Principal
from prizeflow_runtime.errors import ErrorKind


@dataclass
class ClaimPolicy:
    min_claim: dict[str, int]
    daily_limit: dict[str, int]
    review_threshold: dict[str, int]
    velocity_max_claims: int = 5
    velocity_window_s: int = 3600
    new_destination_cooldown_s: int = 86_400
    rejection_rate_bps: int = 5_000
    rejection_rate_min_claims: int = 4
    rejection_rate_window_s: int = 7 * 86_400

    def limits(self, asset: str) -> ClaimLimits:
        big = 2**63 - 1
        return ClaimLimits(
            min_claim=self.min_claim.get(asset, 1),
            daily_limit=self.daily_limit.get(asset, big),
            review_threshold=self.review_threshold.get(asset, big),
            velocity_max_claims=self.velocity_max_claims,
            new_destination_cooldown_s=self.new_destination_cooldown_s,
            rejection_rate_bps=self.rejection_rate_bps,
            rejection_rate_min_claims=self.rejection_rate_min_claims,
        )


def claim_id_for(player_id: str, idempotency_key: str | None) -> str:
    """One claim per (player, Idempotency-Key); a request without a key is a new claim."""
    if idempotency_key:
        return "cl-" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"prizeflow:claim:{player_id}:{idempotency_key}"))
    return f"cl-{uuid.uuid4()}"


@dataclass
class SubmitClaim:
    ledger: Ledger
    policy: ClaimPolicy
    source: str
    metrics: RewardsMetrics | None = None
    clock: Clock = utcnow
    stores: Stores = field(kw_only=True)

    async def __call__(
        self,
        tx: Tx,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        destination: PayoutDestination,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
    ) -> tuple[Claim, bool]:
        """Returns (claim, created). Raises `ClaimError` for a refusal: then nothing is written.

        `correlation_id` ties the claim to the flow that prompted it (e.g. the round just won, sent by the
        game client as `X-Correlation-Id`); without one the claim starts its own flow under its id.
        """
        with ledger_refusals():
            return await self._submit(
                tx,
                actor,
                player_id=player_id,
                asset=asset,
                amount=amount,
                destination=destination,
                idempotency_key=idempotency_key,
                correlation_id=correlation_id,
            )

    async def _submit(
        self,
        tx: Tx,
        actor: Principal,
        *,
        player_id: str,
        asset: str,
        amount: int,
        destination: PayoutDestination,
        idempotency_key: str | None,
        correlation_id: str | None,
    ) -> tuple[Claim, bool]:
        claims, players = self.stores.claims, self.stores.players
        spec = ASSETS.get(asset)
        if spec is None:
            raise self._refuse(
                RefusalCode.UNKNOWN_ASSET, f"unknown asset {asset!r}; known: {', '.join(sorted(ASSETS))}"
            )
        if amount <= 0:
            raise ClaimError(ErrorKind.INVALID, "invalid_amount", "amount must be a positive integer of minor units")
        claim_id = claim_id_for(player_id, idempotency_key)
        wallet = accounts.wallet(player_id, asset)
        # The wallet row lock serializes this player's claims in this asset: the facts below cannot go stale.
        # The clearing account the reservation credits is locked with it, in the one global order.
        balance = (await self.ledger.lock(tx, [wallet, accounts.clearing(asset)]))[wallet]
        dkey = destination_key(destination)
        existing = await claims.get(tx, claim_id)
        if existing is not None:
            # Any difference in the request under the same key is a different claim, never the first one back.
            if (existing.player_id, existing.asset, existing.amount, existing.destination_key) != (
                player_id,
                asset,
                amount,
                dkey,
            ):
                raise ClaimError(
                    ErrorKind.CONFLICT, "idempotency_key_reused", "this Idempotency-Key was used for another claim"
                )
            return existing, False
        now = self.clock()
        history = await claims.history(
            tx,
            player_id,
            asset,
            day=now - timedelta(days=1),
            velocity=now - timedelta(seconds=self.policy.velocity_window_s),
            window=now - timedelta(seconds=self.policy.rejection_rate_window_s),
        )
        seen = await players.destination_first_seen(tx, player_id, dkey)
        flagged = await players.risk_flagged(tx, player_id)
        routable = await self.stores.routes.routable(tx, asset, destination.type.value, amount)
        facts = ClaimFacts(
            asset=asset,
            redeemable=spec.redeemable,
            amount=amount,
            available=balance.available,
            claimed_today=history.claimed_today,
            claims_in_velocity_window=history.recent,
            destination_age_s=(now - seen).total_seconds() if seen is not None else None,
            risk_flagged=flagged,
            recent_decided=history.decided,
            recent_failed=history.failed,
            routable=routable,
        )
        decision = assess(facts, self.policy.limits(asset))
        if isinstance(decision, Refuse):
            raise self._refuse(decision.code, decision.detail)
        pending = reservation(claim_id, player_id, asset, amount, correlation_id=correlation_id or claim_id)
        try:
            result = await self.ledger.apply(tx, [pending])
        except LedgerError as err:  # the lock makes this unreachable; the CHECK constraint makes it safe
            raise self._refuse(RefusalCode.INSUFFICIENT_BALANCE, err.detail) from err
        count_transfers(self.metrics, result)
        await players.remember_destination(tx, player_id, dkey, now)
        held = decision if isinstance(decision, Hold) else None
        claim = Claim(
            id=claim_id,
            player_id=player_id,
            asset=asset,
            amount=amount,
            destination=destination.model_dump(mode="json"),
            status=ClaimStatus.HELD if held else ClaimStatus.APPROVED,
            hold_code=held.code.value if held else None,
            hold_detail=held.detail if held else None,
            rejection_code=None,
            payout_request_id=f"pr-{claim_id}",
            correlation_id=pending.correlation_id or claim_id,
            created_at=now,
            destination_key=dkey,
        )
        await claims.add(tx, claim)
        if held is not None:
            event = ClaimHeld(
                claim_id=claim_id,
                player_id=player_id,
                amount=Money(asset=asset, amount=amount),
                code=held.code,
                held_at=now,
                detail=held.detail,
            )
            await self.stores.outbox.stage(
                tx,
                [
                    new_event(
                        event,
                        source=self.source,
                        correlation_id=claim.correlation_id,
                        subject=claim_id,
                        event_id=event_id_for("ClaimHeld", claim_id),
                    )
                ],
            )
            if self.metrics is not None:
                self.metrics.abuse_holds.labels(held.code.value).inc()
                self.metrics.claims.labels("held").inc()
        else:
            assert isinstance(decision, Approve)
            events = approval(claim, approved_by=None, requested_by=actor.user_id, source=self.source, at=now)
            await self.stores.outbox.stage(tx, events)
            if self.metrics is not None:
                self.metrics.claims.labels("approved").inc()
        return claim, True

    def _refuse(self, code: RefusalCode, detail: str) -> ClaimError:
        if self.metrics is not None:
            self.metrics.claims.labels(f"refused_{code.value}").inc()
        return ClaimError(ErrorKind.INVALID, code.value, detail)
