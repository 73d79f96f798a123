"""What the admin API shows of a policy version (the reads and the decisions answer alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prizeflow_compliance.domain.policy import PolicyProposal


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def proposal_view(proposal: PolicyProposal) -> dict[str, Any]:
    """A version as the admin API shows it."""
    return {
        "id": proposal.id,
        "version": proposal.version,
        "policy": proposal.policy.model_dump(mode="json"),
        "status": proposal.status.value,
        "base_version": proposal.base_version,
        "proposed_by": proposal.proposed_by,
        "proposed_at": iso(proposal.proposed_at),
        "reason": proposal.reason,
        "decided_by": proposal.decided_by,
        "decided_at": iso(proposal.decided_at),
        "decision_reason": proposal.decision_reason,
    }


__all__ = ["iso", "proposal_view"]
