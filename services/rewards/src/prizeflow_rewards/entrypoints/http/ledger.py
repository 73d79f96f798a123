"""The ledger for operators: two-person corrections (one proposes, another approves: one compensating transfer),
the transfers of a flow or an account, and the contradictions kept for a person."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from pydantic import Field

from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN
from prizeflow_contracts.ids import IDENTIFIER_PATTERN, Identifier, Reason
from prizeflow_contracts.money import AssetCode, PositiveMinorUnits
from prizeflow_rewards.application.corrections import (
    DecideCorrection,
    LedgerReads,
    Proposal,
    ProposeCorrection,
    transfer_view,
)
from prizeflow_rewards.domain.corrections import CorrectionStatus
from prizeflow_rewards.entrypoints.http.claims import RejectIn
from prizeflow_rewards.entrypoints.http.common import (
    APPROVERS,
    CORRECTORS,
    LEDGER_READERS,
    STAFF,
    Body,
    Queries,
    principal,
)
from prizeflow_runtime.admin_http import correlation_id_of
from prizeflow_runtime.params import IdentifierPath

# `<kind>:<owner>`: the owner is an id by the contracts' rule (a player, a campaign, a round, `platform`...); which
# kinds there are is the use case's to say (it names them).
ACCOUNT_NAME_PATTERN = r"^[a-z][a-z_]{0,31}:" + IDENTIFIER_PATTERN.removeprefix("^")
AccountName = Annotated[
    str, Field(pattern=ACCOUNT_NAME_PATTERN, max_length=200, description="<kind>:<owner>, e.g. treasury:platform")
]
Reads = NamedDependency[LedgerReads]


class CorrectionIn(Body):
    debit_account: AccountName
    credit_account: AccountName
    asset: AssetCode
    amount: PositiveMinorUnits
    reason: Reason
    reference: Identifier = Field(description="The same reference proposes once")
    corrects_transfer_id: uuid.UUID | None = None


class ApproveIn(Body):
    reason: Reason | None = None


class LedgerController(Controller):
    """Two-person corrections (one proposes, another approves: one compensating transfer) and the ledger's
    transfers by flow or account."""

    path = "/ledger"
    tags = ["ledger"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/corrections", guards=CORRECTORS, status_code=HTTP_201_CREATED)
    async def propose(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CorrectionIn],
        propose_correction: NamedDependency[ProposeCorrection],
    ) -> dict[str, Any]:
        proposal = Proposal(
            debit_account=data.debit_account,
            credit_account=data.credit_account,
            asset=data.asset,
            amount=data.amount,
            reason=data.reason,
            reference=data.reference,
            corrects_transfer_id=data.corrects_transfer_id,
        )
        c, created = await propose_correction(principal(request), proposal, correlation_id=correlation_id_of(request))
        return {**c.view(), "created": created}

    @get("/corrections", guards=LEDGER_READERS)
    async def list_corrections(
        self,
        ledger_reads: Reads,
        correction_status: Annotated[CorrectionStatus | None, QueryParameter(name="status")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        found = await ledger_reads.list_corrections(status=correction_status, limit=limit)
        return {"items": [c.view() for c in found]}

    @get("/contradictions", guards=LEDGER_READERS)
    async def list_contradictions(
        self, queries: Queries, limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100
    ) -> dict[str, Any]:
        """Later words against a final state (a payment for an expired top-up, a payout paid for a voided claim...),
        newest first: kept for a person (docs/runbooks/final-state-contradicted.md); nothing moved on them."""
        rows = await queries.contradictions(limit=limit)
        return {"items": [{k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in r.items()} for r in rows]}

    @get("/corrections/{correction_id:str}", guards=LEDGER_READERS)
    async def show_correction(self, correction_id: IdentifierPath, ledger_reads: Reads) -> dict[str, Any]:
        return (await ledger_reads.correction(correction_id)).view()

    @post("/corrections/{correction_id:str}/approve", guards=APPROVERS, status_code=HTTP_200_OK)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        correction_id: IdentifierPath,
        decide_correction: NamedDependency[DecideCorrection],
        data: JSONBody[ApproveIn | None] = None,
    ) -> dict[str, Any]:
        reason = data.reason if data else None
        return (await decide_correction.approve(principal(request), correction_id, reason=reason)).view()

    @post("/corrections/{correction_id:str}/reject", guards=LEDGER_READERS, status_code=HTTP_200_OK)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        correction_id: IdentifierPath,
        data: JSONBody[RejectIn],
        decide_correction: NamedDependency[DecideCorrection],
    ) -> dict[str, Any]:
        return (await decide_correction.reject(principal(request), correction_id, reason=data.reason)).view()

    @get("/transfers", guards=STAFF)
    async def transfers(
        self,
        ledger_reads: Reads,
        correlation_id: Annotated[str | None, QueryParameter(pattern=CORRELATION_ID_PATTERN)] = None,
        account: Annotated[str | None, QueryParameter(min_length=3, max_length=200)] = None,
        before: Annotated[int | None, QueryParameter(ge=1)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Newest first; `account` is `<kind>:<owner>` (every asset); `before`: a previous page's `next_before`."""
        found = await ledger_reads.transfers(
            correlation_id=correlation_id, account=account, before_seq=before, limit=limit
        )
        return {
            "items": [transfer_view(t) for t in found],
            "next_before": found[-1].seq if len(found) == limit else None,
        }


__all__ = ["LedgerController"]
