"""Claims, one module per use case: submit a claim (decided a batch at a time by the intake), review a hold, settle
a payout's outcome, apply what payouts says about who may be paid."""

from prizeflow_rewards.application.claims.intake import ClaimIntake, CommitOutcomeUnknownError
from prizeflow_rewards.application.claims.review import ReviewHold
from prizeflow_rewards.application.claims.settle_payout import SettlePayout, settlement_accounts
from prizeflow_rewards.application.claims.shared import ClaimError, approval
from prizeflow_rewards.application.claims.submit import ClaimPolicy, SubmitClaim, claim_id_for
from prizeflow_rewards.application.claims.verification import ApplyComplianceEvents, Waiting
from prizeflow_rewards.domain.claims import Claim, reservation

__all__ = [
    "ApplyComplianceEvents",
    "Claim",
    "ClaimError",
    "ClaimIntake",
    "ClaimPolicy",
    "CommitOutcomeUnknownError",
    "ReviewHold",
    "SettlePayout",
    "SubmitClaim",
    "Waiting",
    "approval",
    "claim_id_for",
    "reservation",
    "settlement_accounts",
]
