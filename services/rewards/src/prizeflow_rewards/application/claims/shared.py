"""What the claim use cases share: their error, and what approving a claim emits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prizeflow_contracts.envelope import Envelope, event_id_for, follow, new_event
from prizeflow_contracts.events.payouts import PayoutRequested
from prizeflow_contracts.events.rewards import ClaimApproved
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import PayoutDestination
from prizeflow_rewards.domain.claims import Claim
from prizeflow_runtime.errors import UseCaseError


class ClaimError(UseCaseError):
    """A claim request or review action that cannot proceed; `code` is stable (problem details)."""


def approval(
    claim: Claim, *, approved_by: str | None, requested_by: str, source: str, at: datetime
) -> list[Envelope[Any]]:
    """ClaimApproved + PayoutRequested, staged in the transaction that approves (the reservation exists)."""
    money = Money(asset=claim.asset, amount=claim.amount)
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
            amount=money,
            destination=PayoutDestination.model_validate(claim.destination),
            idempotency_key=f"{claim.id}:payout",
            requested_by=requested_by,
            requested_at=at,
        ),
        source=source,
        subject=claim.id,
        event_id=event_id_for("PayoutRequested", claim.id),
    )
    return [approved, requested]
