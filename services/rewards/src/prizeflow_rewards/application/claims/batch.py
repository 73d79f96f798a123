"""What one claim intake batch is made of: the requests, their outcomes, and what the batch decided so far in memory
(`IntakeBatch`: the requests after see it as committed), with the events a new claim emits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.events.rewards import ClaimHeld
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.application.claims.shared import ClaimError, approval
from prizeflow_rewards.application.ports import FirstUse
from prizeflow_rewards.domain.claims import Approve, Claim, Hold
from prizeflow_rewards.domain.fx import Quote
from prizeflow_rewards.domain.ledger import AccountRef, Balance
from prizeflow_rewards.metrics import RewardsMetrics
from prizeflow_runtime.errors import ErrorKind, UseCaseError
from prizeflow_runtime.principal import Principal


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """One player's request to claim `amount` of `asset` to `destination` (`SubmitClaim.decide`)."""

    actor: Principal
    player_id: str
    asset: str
    amount: int
    destination: PayoutDestination
    idempotency_key: str | None = None
    # Ties the claim to the flow that prompted it (e.g. the round just won, sent by the game client as
    # `X-Correlation-Id`); without one the claim starts its own flow under its id.
    correlation_id: str | None = None
    # A conversion (ADR 0015): the quote this claim locks, and the market rate read for it just before the batch.
    quote_id: str | None = None
    market: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Deferred:
    """A request the batch did not decide: a row it needs (its player's wallet or verification lock) is held by
    another transaction, or its decision counted on a claim the batch then could not write. Decided again in a
    transaction of its own, which waits for the player's rows (`SubmitClaim.decide(..., wait=True)`)."""

    player_id: str


# A request's outcome: (the claim, whether this request created it), the refusal it alone gets, or deferred.
Claimed = tuple[Claim, bool]
ClaimOutcome = Claimed | UseCaseError | Deferred


@dataclass(slots=True)
class Asked:
    """A request that passed the input checks, with what the batch derived for it."""

    index: int
    request: ClaimRequest
    claim_id: str
    destination_key: str


@dataclass
class IntakeBatch:
    """What an intake batch decided so far, in memory: the requests after see it as committed."""

    balances: Mapping[AccountRef, Balance]
    claims: list[Claim] = field(default_factory=list)
    decisions: list[Hold | Approve] = field(default_factory=list)
    events: list[Envelope[Any]] = field(default_factory=list)
    first_uses: list[FirstUse] = field(default_factory=list)
    made: dict[str, Claim] = field(default_factory=dict)
    maker: dict[str, Asked] = field(default_factory=dict)  # the request that made each claim
    repeats: list[Asked] = field(default_factory=list)  # requests naming a claim made earlier in the batch
    judged: list[Asked] = field(default_factory=list)  # requests the rules refused
    elsewhere: dict[str, Claim] = field(default_factory=dict)  # made here, but committed by another transaction
    refused: dict[str, ClaimError] = field(default_factory=dict)  # made here, but the ledger refused its reservation
    reserved: dict[AccountRef, int] = field(default_factory=dict)  # pending debits per wallet
    credited: dict[AccountRef, int] = field(default_factory=dict)  # pending credits per clearing account
    claimed: dict[tuple[str, str], int] = field(default_factory=dict)
    made_by: dict[str, int] = field(default_factory=dict)
    to_destination: dict[tuple[str, str], int] = field(default_factory=dict)  # (destination key, asset)
    first_seen: dict[tuple[str, str], datetime] = field(default_factory=dict)
    quotes: Mapping[str, Quote] = field(default_factory=dict)  # the batch's quotes, locked
    quoted: dict[str, str] = field(default_factory=dict)  # quote id -> the claim of the batch that locks it

    def add(
        self,
        claim: Claim,
        wallet: AccountRef,
        decision: Hold | Approve,
        *,
        requested_by: str,
        source: str,
        now: datetime,
    ) -> None:
        self.claims.append(claim)
        self.decisions.append(decision)
        self.made[claim.id] = claim
        if claim.conversion is not None:
            self.quoted[claim.conversion.quote_id] = claim.id
        self.reserved[wallet] = self.reserved.get(wallet, 0) + claim.amount
        clearing = claim.pending.credit
        self.credited[clearing] = self.credited.get(clearing, 0) + claim.amount
        key = (claim.player_id, claim.asset)
        self.claimed[key] = self.claimed.get(key, 0) + claim.amount
        self.made_by[claim.player_id] = self.made_by.get(claim.player_id, 0) + 1
        to = (claim.destination_key, claim.asset)
        self.to_destination[to] = self.to_destination.get(to, 0) + claim.amount
        if (claim.player_id, claim.destination_key) not in self.first_seen:
            self.first_seen[(claim.player_id, claim.destination_key)] = now
            self.first_uses.append(FirstUse(claim.player_id, claim.destination_key, now))
        self.events.extend(claim_events(claim, decision, requested_by=requested_by, source=source, now=now))

    def after(self, account: AccountRef) -> Balance:
        """The account's counters once the reservations decided so far are applied."""
        b = self.balances[account]
        return replace(
            b,
            debits_pending=b.debits_pending + self.reserved.get(account, 0),
            credits_pending=b.credits_pending + self.credited.get(account, 0),
        )

    def committed_elsewhere(self, claims: Mapping[str, Claim]) -> None:
        """These claims of the batch are another transaction's, committed: the batch writes none of them."""
        self.elsewhere.update(claims)
        self._drop(set(claims))

    def refuse(self, claim_id: str, refusal: ClaimError) -> None:
        """The ledger refused this claim's reservation: the batch writes nothing of it."""
        self.refused[claim_id] = refusal
        self._drop({claim_id})

    def _drop(self, ids: set[str]) -> None:
        if not ids:
            return
        kept = [(c, d) for c, d in zip(self.claims, self.decisions, strict=True) if c.id not in ids]
        self.claims = [c for c, _ in kept]
        self.decisions = [d for _, d in kept]
        self.events = [e for e in self.events if e.subject not in ids]
        self.quoted = {q: c for q, c in self.quoted.items() if c not in ids}
        users = {(c.player_id, c.destination_key) for c in self.claims}
        self.first_uses = [u for u in self.first_uses if (u.player_id, u.destination_key) in users]

    def count(self, metrics: RewardsMetrics | None) -> None:
        if metrics is None:
            return
        for decision in self.decisions:
            if isinstance(decision, Hold):
                metrics.abuse_holds.labels(decision.code.value).inc()
                metrics.claims.labels("held").inc()
            else:
                metrics.claims.labels("approved").inc()


def claim_body(r: ClaimRequest, destination: str) -> tuple[str, str, int, str, str | None]:
    """What one claim is, for its idempotency key: who, what, how much, where (its destination's key), at which
    quote."""
    return (r.player_id, r.asset, r.amount, destination, r.quote_id)


def same_key(existing: Claim, a: Asked) -> ClaimOutcome:
    """A request under the key of an existing claim: that claim back (not created by this request) if the request
    is the same, else a conflict; any difference is a different claim, never the first one back."""
    quote_id = existing.conversion.quote_id if existing.conversion is not None else None
    if (existing.player_id, existing.asset, existing.amount, existing.destination_key, quote_id) != claim_body(
        a.request, a.destination_key
    ):
        return ClaimError(
            ErrorKind.CONFLICT, "idempotency_key_reused", "this Idempotency-Key was used for another claim"
        )
    return existing, False


def claim_events(
    claim: Claim, decision: Hold | Approve, *, requested_by: str, source: str, now: datetime
) -> list[Envelope[Any]]:
    """What a new claim emits: ClaimHeld, or ClaimApproved + PayoutRequested."""
    if isinstance(decision, Approve):
        return approval(claim, approved_by=None, requested_by=requested_by, source=source, at=now)
    held = ClaimHeld(
        claim_id=claim.id,
        player_id=claim.player_id,
        amount=Money(asset=claim.asset, amount=claim.amount),
        code=decision.code,
        held_at=now,
        detail=decision.detail,
    )
    return [
        new_event(
            held,
            source=source,
            correlation_id=claim.correlation_id,
            subject=claim.id,
            event_id=event_id_for("ClaimHeld", claim.id),
        )
    ]


__all__ = [
    "Asked",
    "ClaimOutcome",
    "ClaimRequest",
    "Claimed",
    "Deferred",
    "IntakeBatch",
    "claim_body",
    "claim_events",
    "same_key",
]
