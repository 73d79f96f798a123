"""`bind_compliance(session) -> ComplianceStores`: compliance's stores on the session the unit of work opened."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_payouts.adapters.compliance_pg import SqlComplianceFacts, SqlRescreenStore
from prizeflow_payouts.application.compliance.records import ComplianceStores


def bind_compliance(session: AsyncSession) -> ComplianceStores:
    records = SqlRescreenStore(session)  # the records' statements and the re-screen's, on one session
    return ComplianceStores(records=records, rescreen=records, facts=SqlComplianceFacts(session))


__all__ = ["bind_compliance"]
