"""Pure signing policy: caps and deny lists on a transaction that already matched its intent."""

from prizeflow_signer.domain.policy import SpendingPolicy

__all__ = ["SpendingPolicy"]
