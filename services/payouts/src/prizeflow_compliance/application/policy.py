"""The risk policy's versions: `ProposePolicy`, `ApprovePolicy`, `RejectPolicy` (admins only, two different ones),
and `PublishActivePolicy` (start-up: rewards gets the active version if it was never announced).

An approval activates the version (the active one becomes superseded) and stages `RiskPolicyActivated`; each
decision is audited (AdminActionRecorded, with its admin_audit row) in the same transaction. A proposal made while
another version was active than the one active at approval is stale (`stale_policy`): its author never saw the
rules it would replace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import ValidationError

from prizeflow_compliance.application.errors import ComplianceError
from prizeflow_compliance.application.ports import ComplianceBooks
from prizeflow_compliance.application.records import ComplianceStore
from prizeflow_compliance.domain.policy import (
    PolicyProposal,
    PolicyRefusedError,
    ProposalStatus,
    check_decision,
)
from prizeflow_compliance.metrics import ComplianceMetrics
from prizeflow_contracts.envelope import Envelope, event_id_for, new_event
from prizeflow_contracts.events.audit import AdminActionRecorded
from prizeflow_contracts.events.payouts import RiskPolicyActivated
from prizeflow_contracts.policy import RiskPolicy
from prizeflow_runtime.audit import admin_action
from prizeflow_runtime.errors import ErrorKind
from prizeflow_runtime.uow import UnitOfWork

P = ProposalStatus
log = logging.getLogger(__name__)

ADMIN: Final = "admin"
# One key for every announcement: the versions stay in order on one partition.
POLICY_CORRELATION_ID: Final = "risk-policy"
_REFUSAL_KIND: Final = {
    "self_decision": ErrorKind.FORBIDDEN,
    "stale_policy": ErrorKind.CONFLICT,
    "not_proposed": ErrorKind.CONFLICT,
}


def activated_event(proposal: PolicyProposal, *, source: str, causation_id: str | None = None) -> Envelope[Any]:
    """`RiskPolicyActivated` for an active version: one event id per version, however often it is announced."""
    assert proposal.decided_by is not None
    assert proposal.decided_at is not None
    return new_event(
        RiskPolicyActivated(
            policy=proposal.policy,
            proposed_by=proposal.proposed_by,
            approved_by=proposal.decided_by,
            activated_at=proposal.decided_at,
        ),
        source=source,
        correlation_id=POLICY_CORRELATION_ID,
        causation_id=causation_id,
        subject=str(proposal.version),
        event_id=event_id_for("risk-policy-activated", proposal.version),
    )


def parse_policy(document: Mapping[str, Any], version: int) -> RiskPolicy:
    """The proposed document as version `version`, or `invalid_policy` (422) naming each field that fails."""
    try:
        return RiskPolicy.model_validate({**document, "version": version})
    except ValidationError as err:
        errors = [
            {"key": ".".join(str(p) for p in e["loc"]) or "policy", "message": e["msg"], "source": "body"}
            for e in err.errors(include_url=False, include_input=False)
        ]
        raise ComplianceError(ErrorKind.INVALID, "invalid_policy", "the policy is not valid", errors=errors) from err


def _require_admin(actor: Actor) -> None:
    if ADMIN not in actor.roles:
        raise ComplianceError(ErrorKind.FORBIDDEN, "admin_role_required", "only an admin may change the risk policy")


class Actor(Protocol):
    """Who decides on a policy (the deployable's admin API hands its own actor): their id, roles and the request's
    correlation id, audited with the decision."""

    @property
    def user_id(self) -> str: ...

    @property
    def roles(self) -> frozenset[str]: ...

    @property
    def correlation_id(self) -> str: ...


class _PolicyUseCase:
    def __init__(
        self,
        *,
        uow: UnitOfWork[ComplianceBooks],
        service: str,
        source: str,
        metrics: ComplianceMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.uow = uow
        self.service = service
        self.source = source
        self.metrics = metrics
        self.clock = clock

    def _audit(
        self,
        actor: Actor,
        action: str,
        proposal: PolicyProposal,
        *,
        reason: str | None,
        before: str | None,
        after: str,
        now: datetime,
    ) -> Envelope[AdminActionRecorded]:
        return admin_action(
            actor_user_id=actor.user_id,
            actor_roles=actor.roles,
            action=action,
            target_type="risk_policy",
            target_id=str(proposal.version),
            reason=reason,
            before={"status": before} if before else {},
            after={"status": after, "base_version": proposal.base_version},
            service=self.service,
            source=self.source,
            correlation_id=actor.correlation_id,
            occurred_at=now,
        )

    async def _proposal(self, store: ComplianceStore, proposal_id: int) -> PolicyProposal:
        proposal = await store.proposal(proposal_id)
        if proposal is None:
            raise ComplianceError(ErrorKind.NOT_FOUND, "proposal_not_found", f"no policy proposal {proposal_id}")
        return proposal


class ProposePolicy(_PolicyUseCase):
    async def execute(self, actor: Actor, document: Mapping[str, Any], reason: str) -> PolicyProposal:
        """A new version (the next number) proposed against the version active now."""
        _require_admin(actor)
        parse_policy(document, 1)  # refused before anything is locked or numbered
        now = self.clock()
        async with self.uow() as books:
            store = books.compliance.records
            await store.lock_policies()
            active = await store.active_proposal()
            version = await store.next_policy_version()
            proposal = PolicyProposal(
                id=0,
                policy=parse_policy(document, version),
                status=P.PROPOSED,
                base_version=0 if active is None else active.version,
                proposed_by=actor.user_id,
                proposed_at=now,
                reason=reason,
            )
            proposal_id = await store.insert_proposal(proposal)
            proposal = replace(proposal, id=proposal_id)
            await store.add_events(
                [
                    self._audit(
                        actor, "risk_policy.propose", proposal, reason=reason, before=None, after="proposed", now=now
                    )
                ]
            )
        return proposal


class _Decide(_PolicyUseCase):
    TO: P
    ACTION: str

    async def execute(self, actor: Actor, proposal_id: int, reason: str | None) -> PolicyProposal:
        _require_admin(actor)
        now = self.clock()
        async with self.uow() as books:
            store = books.compliance.records
            await store.lock_policies()
            proposal = await self._proposal(store, proposal_id)
            active = await store.active_proposal()
            try:
                check_decision(
                    proposal, actor.user_id, to=self.TO, active_version=0 if active is None else active.version
                )
            except PolicyRefusedError as err:
                raise ComplianceError(_REFUSAL_KIND.get(err.code, ErrorKind.CONFLICT), err.code, err.detail) from err
            audit = self._audit(
                actor, self.ACTION, proposal, reason=reason, before=proposal.status.value, after=self.TO.value, now=now
            )
            events: list[Envelope[Any]] = [audit]
            if self.TO is P.ACTIVE and active is not None:
                await store.supersede(active.id)
            await store.decide_proposal(proposal.id, to=self.TO, by=actor.user_id, reason=reason, at=now)
            decided = replace(
                proposal, status=self.TO, decided_by=actor.user_id, decided_at=now, decision_reason=reason
            )
            if self.TO is P.ACTIVE:
                events.append(activated_event(decided, source=self.source, causation_id=str(audit.id)))
                await store.record_policy_announcement(decided.version, now)
            await store.add_events(events)
        if self.TO is P.ACTIVE:
            if self.metrics is not None:
                self.metrics.policy_version.set(decided.version)
            log.info("risk policy activated", extra={"version": decided.version, "base_version": decided.base_version})
        return decided


class ApprovePolicy(_Decide):
    """A second admin activates a proposal (stale if another version became active since it was proposed)."""

    TO = P.ACTIVE
    ACTION = "risk_policy.approve"


class RejectPolicy(_Decide):
    """A second admin rejects a proposal (the proposer cannot decide it either way: two people, always)."""

    TO = P.REJECTED
    ACTION = "risk_policy.reject"


class PublishActivePolicy(_PolicyUseCase):
    """Start-up: announce the active version unless it was announced already (`risk_policy_announcements`, row-
    locked so concurrent replicas agree). Deleting that row makes the next start announce it again."""

    async def execute(self) -> int | None:
        """The version announced now, or None."""
        now = self.clock()
        async with self.uow() as books:
            store = books.compliance.records
            announced = await store.announced_policy_version()
            active = await store.active_proposal()
            if self.metrics is not None:
                self.metrics.policy_version.set(0 if active is None else active.version)
            if active is None or announced == active.version:
                return None
            await store.add_events([activated_event(active, source=self.source)])
            await store.record_policy_announcement(active.version, now)
        log.info("risk policy announced", extra={"version": active.version})
        return active.version


__all__ = [
    "ApprovePolicy",
    "ProposePolicy",
    "PublishActivePolicy",
    "RejectPolicy",
    "activated_event",
    "parse_policy",
]
