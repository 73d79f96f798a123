"""Approval policy (docs/architecture.md §5): per asset, auto below a threshold, one approver above it, two distinct
approvers above a higher one; nobody approves a payout they requested; only the `approver` role decides."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from prizeflow_contracts.events.payouts import REQUIRED_APPROVERS, ApprovalPolicy

# Separation of duties: admins configure and operate, approvers decide. An admin who must approve
# needs the approver role as well; ops and players never approve.
APPROVER_ROLES: Final = frozenset({"approver"})


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """Thresholds in minor units. `auto_below=None`: nothing is auto-approved; `dual_from=None`: never dual."""

    asset: str
    auto_below: int | None
    dual_from: int | None

    def __post_init__(self) -> None:
        if self.auto_below is not None and self.dual_from is not None and self.dual_from < self.auto_below:
            raise ValueError(f"{self.asset}: dual_from must not be below auto_below")

    def policy_for(self, amount: int) -> ApprovalPolicy:
        if self.dual_from is not None and amount >= self.dual_from:
            return ApprovalPolicy.DUAL
        if self.auto_below is not None and amount < self.auto_below:
            return ApprovalPolicy.AUTO
        return ApprovalPolicy.SINGLE


@dataclass(frozen=True)
class ApprovalBook:
    """The rules of every asset; an asset without a rule needs one approver (never auto)."""

    rules: dict[str, ApprovalRule]

    def policy_for(self, asset: str, amount: int) -> ApprovalPolicy:
        rule = self.rules.get(asset)
        return rule.policy_for(amount) if rule is not None else ApprovalPolicy.SINGLE


class ApprovalRefusedError(Exception):
    """A decision the policy does not allow; `code` is stable (problem details, metrics)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def check_decider(*, user_id: str, roles: Collection[str], requested_by: str, beneficiary: str) -> None:
    """Who may approve or reject at all. The beneficiary counts as a requester: a reviewer who released a player's
    held claim is the payout's `requested_by`, and the player (with an approver role, say) must not decide either."""
    if not APPROVER_ROLES.intersection(roles):
        raise ApprovalRefusedError("approver_role_required", "approving or rejecting needs the approver role")
    if user_id in (requested_by, beneficiary):
        raise ApprovalRefusedError("self_approval", "nobody decides on a payout they requested or that pays them")


def record_approval(
    *,
    policy: ApprovalPolicy,
    user_id: str,
    roles: Collection[str],
    requested_by: str,
    beneficiary: str,
    approvers: Collection[str],
) -> bool:
    """Check one more approval by the subject `user_id`; True when the policy is now satisfied."""
    check_decider(user_id=user_id, roles=roles, requested_by=requested_by, beneficiary=beneficiary)
    if user_id in approvers:
        raise ApprovalRefusedError("already_approved", f"{user_id} already approved this payout; a second person must")
    needed = REQUIRED_APPROVERS[policy]
    if needed == 0:
        raise ApprovalRefusedError("no_approval_needed", "this payout is auto-approved")
    return len(approvers) + 1 >= needed


__all__ = [
    "APPROVER_ROLES",
    "ApprovalBook",
    "ApprovalRefusedError",
    "ApprovalRule",
    "check_decider",
    "record_approval",
]
