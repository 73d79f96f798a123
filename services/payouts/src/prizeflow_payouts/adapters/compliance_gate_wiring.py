"""Wiring of the compliance gate to the SQL stores (bootstrap uses these; no use case sees a session).

- `sql_compliance_facts`: the `ComplianceFacts` the gate reads, in the gate's own transaction (the payouts one).
- `VerificationHook`: what the verification use case calls, in the transaction that records a player's new status,
  so the player's kyc_required holds move on with it (`ResumeVerifiedPayouts.on_verification_changed`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.adapters.compliance_pg import SqlComplianceFacts
from prizeflow_payouts.adapters.repository import SqlPayoutRepository
from prizeflow_payouts.application.compliance.gate import GateStore
from prizeflow_payouts.application.compliance.ports import ComplianceFacts
from prizeflow_payouts.application.compliance.resume import ResumeVerifiedPayouts


def _session(store: object) -> AsyncSession:
    session = getattr(store, "session", None)
    if not isinstance(session, AsyncSession):
        raise TypeError(f"{type(store).__name__} is not bound to a SQL transaction")
    return session


def sql_compliance_facts(store: GateStore) -> ComplianceFacts:
    """`PayoutGate(facts=sql_compliance_facts, ...)`: the active policy and players' verification, read in the
    gate's transaction."""
    return SqlComplianceFacts(_session(store))


class VerificationHook:
    """`await hook(store, [player_id])` in the verification use case's transaction (any store bound to a SQL session:
    `SqlComplianceStore`, `SqlPayoutRepository`); returns how many held payouts moved."""

    def __init__(self, resume: ResumeVerifiedPayouts) -> None:
        self.resume = resume

    async def __call__(self, store: object, player_ids: Sequence[str]) -> int:
        return await self.resume.on_verification_changed(SqlPayoutRepository(_session(store)), player_ids)


__all__ = ["VerificationHook", "sql_compliance_facts"]
