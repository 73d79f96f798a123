"""Pure payout rules: the state machine, the approval policy, retry planning. No I/O."""

from prizeflow_payouts.domain.approval import (
    APPROVER_ROLES,
    ApprovalBook,
    ApprovalRefusedError,
    ApprovalRule,
    check_decider,
    record_approval,
)
from prizeflow_payouts.domain.retry import AfterFailure, FailurePlan, backoff_seconds, plan_after_failure
from prizeflow_payouts.domain.state import (
    CANCELLABLE_LOCALLY,
    NON_FINAL,
    PAYOUT_MACHINE,
    TRANSITIONS,
    PayoutState,
    can_transition,
    check_transition,
    steps_for_provider_status,
)

__all__ = [
    "APPROVER_ROLES",
    "CANCELLABLE_LOCALLY",
    "NON_FINAL",
    "PAYOUT_MACHINE",
    "TRANSITIONS",
    "AfterFailure",
    "ApprovalBook",
    "ApprovalRefusedError",
    "ApprovalRule",
    "FailurePlan",
    "PayoutState",
    "backoff_seconds",
    "can_transition",
    "check_decider",
    "check_transition",
    "plan_after_failure",
    "record_approval",
    "steps_for_provider_status",
]
