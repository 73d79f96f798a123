"""Compliance API: a player's own verification (/v1/me/verification), the risk policy's versions and a player's
compliance view for staff (/v1/admin/compliance/...).

Roles: `player` for /v1/me/* (their own record only: the token's subject); proposing, approving and rejecting a
policy need `admin` (two different admins: the use cases decide, PostgreSQL holds it too); reading the policy needs
admin, approver or ops; a player's compliance view needs admin or approver. A player is told the next step only,
never a threshold, a score, a list or a match. Refusals are `UseCaseError`s, rendered as problem details once by
the runtime's app.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation
from litestar.status_codes import HTTP_201_CREATED
from pydantic import Field

from prizeflow_compliance.application.policy import ApprovePolicy, ProposePolicy, RejectPolicy
from prizeflow_compliance.application.ports import ComplianceQueries as ComplianceQueriesPort
from prizeflow_compliance.application.verification import (
    ReadVerification,
    StartVerification,
    VerificationView,
)
from prizeflow_compliance.application.views import proposal_view
from prizeflow_contracts.ids import Reason
from prizeflow_runtime.auth import Principal, Role, require_roles
from prizeflow_runtime.operators import StrictBody, request_actor
from prizeflow_runtime.params import IdentifierPath, SerialPath

ComplianceQueries = NamedDependency[SkipValidation[ComplianceQueriesPort]]  # a Protocol: nothing to check at run time
StartKyc = NamedDependency[SkipValidation[StartVerification]]
ReadKyc = NamedDependency[SkipValidation[ReadVerification]]
Propose = NamedDependency[SkipValidation[ProposePolicy]]
Approve = NamedDependency[SkipValidation[ApprovePolicy]]
Reject = NamedDependency[SkipValidation[RejectPolicy]]

PLAYERS = require_roles(Role.PLAYER)
ADMINS = require_roles(Role.ADMIN)
STAFF = require_roles(Role.ADMIN, Role.APPROVER)
READERS = require_roles(Role.ADMIN, Role.APPROVER, Role.OPS)  # as the payout admin API's readers


class PolicyDocument(StrictBody):
    """The rules of a version; its number is the next one, given by the service."""

    rules: Annotated[list[dict[str, Any]], Field(max_length=200)] = Field(default_factory=list)
    note: Annotated[
        str, Field(max_length=1000, description="What changed and why, for the approver (≤ 1000 chars)")
    ] = ""


class ProposalBody(StrictBody):
    policy: PolicyDocument
    reason: Reason


class DecisionBody(StrictBody):
    reason: Reason | None = None


def _player(request: Request[Any, Any, Any]) -> str:
    principal = request.user
    assert isinstance(principal, Principal)
    return principal.user_id


def _view(view: VerificationView, *, with_url: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"status": view.status.value, "message": view.message}
    if with_url:
        out["url"] = view.url
    return out


class VerificationController(Controller):
    path = "/v1/me/verification"
    tags = ["compliance"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @post("/", guards=[PLAYERS], status_code=200)
    async def start(self, request: Request[Any, Any, Any], start_kyc: StartKyc) -> dict[str, Any]:
        """The link to the vendor's hosted flow (a fresh one each time); the same verification for a player."""
        return _view(await start_kyc.execute(_player(request)), with_url=True)

    @get("/", guards=[PLAYERS])
    async def status(self, request: Request[Any, Any, Any], read_kyc: ReadKyc) -> dict[str, Any]:
        return _view(await read_kyc.execute(_player(request)), with_url=False)


class CompliancePolicyController(Controller):
    path = "/v1/admin/compliance"
    tags = ["compliance"]  # noqa: RUF012 - Litestar reads this class attribute as is

    @get("/policy", guards=[READERS])
    async def policy(self, compliance_queries: ComplianceQueries) -> dict[str, Any]:
        return await compliance_queries.policy()

    @post("/policy/proposals", guards=[ADMINS], status_code=HTTP_201_CREATED)
    async def propose(
        self, request: Request[Any, Any, Any], data: JSONBody[ProposalBody], propose_policy: Propose
    ) -> dict[str, Any]:
        """A new version (the next number), proposed against the version active now; 422 naming each field of a
        policy that is not valid."""
        proposal = await propose_policy.execute(request_actor(request), data.policy.model_dump(), data.reason)
        return proposal_view(proposal)

    @post("/policy/proposals/{proposal_id:str}/approve", guards=[ADMINS], status_code=200)
    async def approve(
        self,
        request: Request[Any, Any, Any],
        proposal_id: SerialPath,
        data: JSONBody[DecisionBody],
        approve_policy: Approve,
    ) -> dict[str, Any]:
        """Activates the version (a second admin; 409 `stale_policy` if another version became active since)."""
        return proposal_view(await approve_policy.execute(request_actor(request), proposal_id, data.reason))

    @post("/policy/proposals/{proposal_id:str}/reject", guards=[ADMINS], status_code=200)
    async def reject(
        self,
        request: Request[Any, Any, Any],
        proposal_id: SerialPath,
        data: JSONBody[DecisionBody],
        reject_policy: Reject,
    ) -> dict[str, Any]:
        return proposal_view(await reject_policy.execute(request_actor(request), proposal_id, data.reason))

    @get("/players/{player_id:str}", guards=[STAFF])
    async def player(self, player_id: IdentifierPath, compliance_queries: ComplianceQueries) -> dict[str, Any]:
        """A player's verification, history, screening and the gate's decisions on their payouts (staff only)."""
        return await compliance_queries.player(player_id)


__all__ = ["CompliancePolicyController", "VerificationController"]
