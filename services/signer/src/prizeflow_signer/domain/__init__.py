"""Pure signing policy: caps, deny lists and one live signature per payout, on a transaction that already
matched its intent."""

from prizeflow_signer.domain.policy import LiveSignature, LiveSignatureExistsError, OneLiveSignature, SpendingPolicy

__all__ = ["LiveSignature", "LiveSignatureExistsError", "OneLiveSignature", "SpendingPolicy"]
