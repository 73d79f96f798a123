"""What the claim use cases share: their error, what approving a claim emits, and the facts the risk policy reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope, event_id_for, follow, new_event
from prizeflow_contracts.events.payouts import PayoutConversion, PayoutRequested
from prizeflow_contracts.events.rewards import ClaimApproved
from prizeflow_contracts.money import Money
from prizeflow_contracts.policy import PolicyFacts, VerificationStatus
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_rewards.application.ports import IntakeFacts
from prizeflow_rewards.domain.claims import Claim
from prizeflow_runtime.errors import UseCaseError


class ClaimError(UseCaseError):
    """A claim request or review action that cannot proceed; `code` is stable (problem details)."""


def approval(
    claim: Claim, *, approved_by: str | None, requested_by: str, source: str, at: datetime
) -> list[Envelope[Any]]:
    """ClaimApproved + PayoutRequested, staged in the transaction that approves (the reservation exists). A converted
    claim's request pays the converted amount and carries the conversion (ADR 0015)."""
    money = Money(asset=claim.asset, amount=claim.amount)
    c = claim.conversion
    conversion = (
        PayoutConversion(
            quote_id=c.quote_id,
            source=money,
            spread=Money(asset=claim.asset, amount=c.spread),
            rate=format(c.rate, "f"),
        )
        if c is not None
        else None
    )
    approved = new_event(
        ClaimApproved(
            claim_id=claim.id, player_id=claim.player_id, amount=money, approved_by=approved_by, approved_at=at
        ),
        source=source,
        correlation_id=claim.correlation_id,
        subject=claim.id,
        event_id=event_id_for("ClaimApproved", claim.id),
    )
    requested = follow(
        approved,
        PayoutRequested(
            payout_request_id=claim.payout_request_id,
            claim_id=claim.id,
            player_id=claim.player_id,
            amount=Money(asset=claim.payout_asset, amount=claim.payout_amount),
            destination=PayoutDestination.model_validate(claim.destination),
            idempotency_key=f"{claim.id}:payout",
            requested_by=requested_by,
            requested_at=at,
            conversion=conversion,
        ),
        source=source,
        subject=claim.id,
        event_id=event_id_for("PayoutRequested", claim.id),
    )
    return [approved, requested]


def policy_facts(
    known: IntakeFacts,
    *,
    asset: str,
    amount: int,
    destination_type: DestinationType,
    verification: VerificationStatus,
    destination_age_s: float | None,
    player_amount: int = 0,
    player_claims: int = 0,
    destination_amount: int = 0,
) -> PolicyFacts:
    """What the policy reads of one claim: the store's sums per window plus what the batch decided before it
    (`player_amount` in the asset, `player_claims` in any, `destination_amount` to this destination in the asset:
    all made now, so inside every window). A claim knows neither its rail nor the player's country (`None`: the
    rules that need them are left to the payout gate)."""
    return PolicyFacts(
        asset=asset,
        amount=amount,
        destination_type=destination_type,
        verification=verification,
        player_totals={w: t + player_amount for w, t in known.player_totals.items()},
        destination_totals={w: t + destination_amount for w, t in known.destination_totals.items()},
        player_counts={w: c + player_claims for w, c in known.player_counts.items()},
        destination_age_s=destination_age_s,
    )
