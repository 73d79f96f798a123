"""`bind(session) -> ComplianceStores`: compliance's stores on the session the deployable's unit of work opened
(the composition root hands it to payouts' `bind`, which carries them as `Books.compliance`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from prizeflow_compliance.adapters.records_pg import SqlComplianceFacts, SqlRescreenStore
from prizeflow_compliance.application.ports import ComplianceStores


def bind(session: AsyncSession) -> ComplianceStores:
    records = SqlRescreenStore(session)  # the records' statements and the re-screen's, on one session
    return ComplianceStores(records=records, rescreen=records, facts=SqlComplianceFacts(session))


__all__ = ["bind"]
