"""Compliance: one player's verification, screening and the gate's decisions with their reasons; the risk policy
(the active version in words, the proposals, propose a new version, approve or reject another admin's proposal);
the sanctions lists loaded, refreshed now on an admin's request.

Staff only (admin, approver), as payouts' guards say. The console offers approve/reject only to an admin who did
not propose the version; payouts refuses the proposer anyway, and its problem detail is the page's alert."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from prizeflow_console.application.compliance import (
    DecideProposal,
    ListSanctions,
    PolicyState,
    ProposePolicy,
    RefreshSanctions,
    ShowPlayer,
    ShowPolicy,
)
from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.compliance import (
    policy_rules,
    proposal_offer,
    reason_words,
    versions_words,
)
from prizeflow_console.domain.reconciliation import moment
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import (
    Session,
    apis,
    back,
    flash,
    may,
    page,
    problem_text,
    signed_in,
    status_for,
)
from prizeflow_runtime.params import IdentifierPath

REASON_MAX: Final = 1000  # the services' `Reason` (1-1000 characters)
NOTE_MAX: Final = 500  # `RiskPolicy.note`
RULES_MAX_CHARS: Final = 200_000
_PLAYER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$")
PlayerId = Annotated[str | None, QueryParameter(max_length=256)]


def _clean(value: Any, limit: int = 256) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _set(value: Any) -> Any:
    """A document without its unset (null) fields: what a person edits is what the rule says."""
    if isinstance(value, Mapping):
        return {k: _set(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_set(v) for v in value]
    return value


def _rules_text(state: PolicyState | None) -> str:
    """The active version's rules as the propose form's starting point (an empty list when none is active)."""
    policy = state.active.get("policy") if state and state.active else None
    rules = policy.get("rules") if isinstance(policy, Mapping) else None
    return json.dumps(_set(rules) if isinstance(rules, list) else [], indent=2)


def _field_errors(problem: ApiProblem) -> list[str]:
    """A 422's field errors (`errors: [{key, message}]`), each as `where: what`."""
    errors = problem.extra.get("errors")
    if not isinstance(errors, Sequence) or isinstance(errors, str):
        return []
    out = []
    for error in errors:
        if isinstance(error, Mapping):
            key = str(error.get("key") or "").removeprefix("policy.")
            out.append(f"{key}: {error.get('message')}" if key else str(error.get("message")))
        else:
            out.append(str(error))
    return out


class ComplianceController(Controller):
    path = "/compliance"
    include_in_schema = False

    @get("/")
    async def player(self, request: Request[Any, Any, Any], player_id: PlayerId = None) -> Template:
        """Search by player id: their verification, screening and each gate decision with its reasons."""
        session = signed_in(request, Page.COMPLIANCE)
        wanted = _clean(player_id)
        context: dict[str, Any] = {"player_id": wanted, "record": None, "problem": None, "error": None,
                                   "reason_words": reason_words, "versions_words": versions_words}  # fmt: skip
        status = 200
        if wanted and not _PLAYER.fullmatch(wanted):
            context["error"] = "A player id is 1 to 128 letters, digits and : _ . -"
            status = 400
        elif wanted:
            try:
                context["record"] = await ShowPlayer(apis(request))(wanted, token=session.token)
            except ApiProblem as problem:
                context["problem"] = problem
                status = status_for(problem)
        return page(request, "compliance_player.html", session=session, current_page=Page.COMPLIANCE,
                    section="player", status_code=status, **context)  # fmt: skip

    async def _policy_page(
        self, request: Request[Any, Any, Any], session: Session, *, typed: Mapping[str, str] | None = None,
        errors: Sequence[str] = (), status_code: int = 200,
    ) -> Template:  # fmt: skip
        state: PolicyState | None = None
        problem: ApiProblem | None = None
        try:
            state = await ShowPolicy(apis(request))(token=session.token)
        except ApiProblem as err:
            problem = err
        form = {"rules": _rules_text(state), "note": "", "reason": "", **(typed or {})}
        return page(
            request, "compliance_policy.html", session=session, current_page=Page.COMPLIANCE, section="policy",
            state=state, problem=problem, form=form, errors=list(errors), policy_rules=policy_rules,
            offer=lambda p: proposal_offer(session.viewer, p), may_propose=session.viewer.may(Action.MANAGE_COMPLIANCE),
            reason_max=REASON_MAX, note_max=NOTE_MAX, moment=moment,
            status_code=status_code if status_code != 200 else (status_for(problem) if problem else 200),
        )  # fmt: skip

    @get("/policy")
    async def policy(self, request: Request[Any, Any, Any]) -> Template:
        session = signed_in(request, Page.COMPLIANCE)
        return await self._policy_page(request, session)

    @post("/policy/proposals")
    async def propose(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        """A new version: the rules as JSON, a note, a reason. Refused here when the JSON is not a list; payouts'
        422 field errors are shown beside the form with what was typed kept."""
        session = may(request, Page.COMPLIANCE, Action.MANAGE_COMPLIANCE)
        form = await request.form()
        typed = {
            "rules": _clean(form.get("rules"), RULES_MAX_CHARS + 1),
            "note": _clean(form.get("note"), NOTE_MAX + 1),
            "reason": _clean(form.get("reason"), REASON_MAX + 1),
        }
        errors: list[str] = []
        rules: Any = None
        try:
            rules = json.loads(typed["rules"] or "[]")
        except json.JSONDecodeError as err:
            errors.append(f"rules: not JSON ({err.msg} at line {err.lineno}, column {err.colno})")
        else:
            if not isinstance(rules, list):
                errors.append("rules: a JSON list of rules, [ {...}, ... ]")
        if len(typed["rules"]) > RULES_MAX_CHARS:
            errors.append(f"rules: at most {RULES_MAX_CHARS} characters")
        if len(typed["note"]) > NOTE_MAX:
            errors.append(f"note: at most {NOTE_MAX} characters")
        if not typed["reason"] or len(typed["reason"]) > REASON_MAX:
            errors.append(f"reason: say why, 1 to {REASON_MAX} characters")
        if errors:
            return await self._policy_page(request, session, typed=typed, errors=errors, status_code=400)
        try:
            proposal = await ProposePolicy(apis(request))(rules, typed["note"], typed["reason"], token=session.token)
        except ApiProblem as problem:
            shown = _field_errors(problem) or [problem_text(problem)]
            return await self._policy_page(request, session, typed=typed, errors=shown, status_code=status_for(problem))
        flash(request, "success", f"Proposed version {proposal.get('version')}: another admin must approve it.")
        return back("/compliance/policy")

    async def _decide(self, request: Request[Any, Any, Any], proposal_id: str, decision: str) -> Redirect:
        session = may(request, Page.COMPLIANCE, Action.MANAGE_COMPLIANCE)
        form = await request.form()
        reason = _clean(form.get("reason"), REASON_MAX + 1)
        if not reason or len(reason) > REASON_MAX:
            flash(request, "error", f"Say why you {decision} it: a reason of 1 to {REASON_MAX} characters is required.")
            return back("/compliance/policy")
        try:
            answer = await DecideProposal(apis(request))(proposal_id, decision, reason, token=session.token)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            version = answer.get("version", proposal_id)
            done = (f"Approved: version {version} is the active risk policy from the next decision on."
                    if decision == "approve" else f"Rejected version {version}.")  # fmt: skip
            flash(request, "success", done)
        return back("/compliance/policy")

    @post("/policy/proposals/{proposal_id:str}/approve")
    async def approve(self, request: Request[Any, Any, Any], proposal_id: IdentifierPath) -> Redirect:
        return await self._decide(request, proposal_id, "approve")

    @post("/policy/proposals/{proposal_id:str}/reject")
    async def reject(self, request: Request[Any, Any, Any], proposal_id: IdentifierPath) -> Redirect:
        return await self._decide(request, proposal_id, "reject")

    @get("/lists")
    async def lists(self, request: Request[Any, Any, Any]) -> Template:
        session = signed_in(request, Page.COMPLIANCE)
        problem: ApiProblem | None = None
        loaded: list[dict[str, Any]] = []
        try:
            loaded = await ListSanctions(apis(request))(token=session.token)
        except ApiProblem as err:
            problem = err
        return page(request, "compliance_lists.html", session=session, current_page=Page.COMPLIANCE,
                    section="lists", lists=loaded, problem=problem,
                    may_refresh=session.viewer.may(Action.MANAGE_COMPLIANCE),
                    status_code=status_for(problem) if problem else 200)  # fmt: skip

    @post("/lists/refresh")
    async def refresh(self, request: Request[Any, Any, Any]) -> Redirect:
        session = may(request, Page.COMPLIANCE, Action.MANAGE_COMPLIANCE)
        try:
            loaded = await RefreshSanctions(apis(request))(token=session.token)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            versions = ", ".join(f"{x.get('source')} {x.get('version')}" for x in loaded) or "no list configured"
            flash(request, "success", f"Refreshed the sanctions lists: {versions}.")
        return back("/compliance/lists")


__all__ = ["ComplianceController"]
