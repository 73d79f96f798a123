"""Compliance's published interface: what another context of the deployable may use of it (ADR 0013).

- `ComplianceFacts` — the active risk policy and players' verification, read by the payout gate through the stores
  of the deployable's unit of work (`books.compliance.facts`), so the facts are read in the payout's own
  transaction (ADR 0012: one transaction from the gate's reads to the payout's hold).
- `PlayerCompliance`, the screen (`SanctionsScreen`, `ScreeningResult`, `ScreeningMatch`, `ScreeningUnavailable`):
  the value types and the port the gate decides with.
- `ComplianceStores` and `ComplianceBooks`: compliance's stores as the deployable's `Books` carries them (field
  `compliance`), and `VerificationChanged`: the hook a verification change calls in its transaction (the payout
  gate's resume of the player's held payouts).

Everything else in `prizeflow_compliance` (its `application`, its `adapters`) is its own: a test
(`tests/architecture/test_context_boundaries.py`) fails when another context imports them.
"""

from __future__ import annotations

from prizeflow_compliance.application.ports import (
    ComplianceBooks,
    ComplianceFacts,
    ComplianceStores,
    PlayerCompliance,
    SanctionsScreen,
    ScreeningMatch,
    ScreeningResult,
    ScreeningUnavailable,
    VerificationChanged,
)

__all__ = [
    "ComplianceBooks",
    "ComplianceFacts",
    "ComplianceStores",
    "PlayerCompliance",
    "SanctionsScreen",
    "ScreeningMatch",
    "ScreeningResult",
    "ScreeningUnavailable",
    "VerificationChanged",
]
