"""The risk policy's versions: an admin proposes, a different admin approves (or rejects), against the version that
was active when it was proposed. PostgreSQL holds the same rules (migration 0019: CHECK decided_by <> proposed_by,
one active at most, trigger `risk_policies_move`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from prizeflow_contracts.policy import RiskPolicy


class ProposalStatus(StrEnum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"


P = ProposalStatus
DECISIONS: Final[Mapping[ProposalStatus, frozenset[ProposalStatus]]] = {
    P.PROPOSED: frozenset({P.ACTIVE, P.REJECTED}),
    P.ACTIVE: frozenset({P.SUPERSEDED}),  # a later version was approved
    P.SUPERSEDED: frozenset(),
    P.REJECTED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class PolicyProposal:
    id: int
    policy: RiskPolicy  # its version is the proposal's
    status: ProposalStatus
    base_version: int  # the version active when it was proposed (0: none)
    proposed_by: str
    proposed_at: datetime
    reason: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None

    @property
    def version(self) -> int:
        return self.policy.version


class PolicyRefusedError(Exception):
    """`code`: not_proposed, self_decision, stale_policy."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def check_policy_move(src: ProposalStatus, dst: ProposalStatus) -> None:
    if dst not in DECISIONS[src]:
        raise PolicyRefusedError(f"not_{P.PROPOSED.value}", f"a {src.value} version cannot become {dst.value}")


def check_decision(proposal: PolicyProposal, decider: str, *, to: ProposalStatus, active_version: int) -> None:
    """May `decider` move `proposal` to `to` (active or rejected) while `active_version` is active?

    A second person decides (the proposer never does); an approval made against an active version other than the
    one the proposal was written for is stale: its author never saw the rules it would replace."""
    check_policy_move(proposal.status, to)
    if decider == proposal.proposed_by:
        raise PolicyRefusedError(
            "self_decision", "a policy change needs a second person: the proposer cannot decide it"
        )
    if to is P.ACTIVE and proposal.base_version != active_version:
        raise PolicyRefusedError(
            "stale_policy",
            f"version {proposal.version} was proposed against version {proposal.base_version}, but version "
            f"{active_version} is active now: propose it again",
        )


__all__ = ["DECISIONS", "PolicyProposal", "PolicyRefusedError", "ProposalStatus", "check_decision", "check_policy_move"]
