"""A signing pipeline as bootstrap builds it, on a hot key (no HSM), for the unit tests of the pipeline and of the
refusal of unreadable requests."""

from __future__ import annotations

from typing import Any

from stellar_sdk import Keypair

from prizeflow_signer.adapters.backends import HotKeyBackend
from prizeflow_signer.application.sign_pipeline import SignPipeline
from prizeflow_signer.domain.policy import SpendingPolicy
from prizeflow_stellar.checks import CheckPolicy

HOT = Keypair.random()
STELLAR = CheckPolicy(
    network_passphrase="n", funding_account=HOT.public_key, allowed_sources=frozenset({HOT.public_key}),
    max_fee_stroops=1, contract_id=None, method_name="m", allowed_assets=frozenset({"XLM"}), contract_asset="XLM",
    max_validity_seconds=60,
)  # fmt: skip


def pipeline(*schemes: Any) -> SignPipeline:
    return SignPipeline(
        schemes=list(schemes),
        backend=HotKeyBackend(HOT.secret),
        spending=SpendingPolicy(tx_caps={}, daily_caps={}, deny_destinations=frozenset()),
        source="/prizeflow/signer",
    )


__all__ = ["HOT", "STELLAR", "pipeline"]
