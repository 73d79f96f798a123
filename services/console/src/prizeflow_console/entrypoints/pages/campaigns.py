"""Campaigns and pools: what each pool holds (funded, reserved, paid, remaining) and its held rounds; admins
create, fund, pause, resume, close a campaign and release its held rounds. Rewards decides who may, and when."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect

from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.money import AmountError, format_minor, parse_major
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import (
    Session,
    act,
    apis,
    back,
    checked_id,
    flash,
    may,
    page,
    problem_text,
    signed_in,
    status_for,
)
from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_contracts.money import ASSETS
from prizeflow_runtime.params import IdentifierPath

_ID: Final = re.compile(IDENTIFIER_PATTERN)
REASON_MAX: Final = 1000  # the contract's Reason
NAME_MAX: Final = 200


def funding_reference() -> str:
    """One per rendered fund form: rewards funds once per reference, so a form sent twice moves money once."""
    return f"console-fund-{uuid.uuid4().hex}"


def _campaign_path(campaign_id: str) -> str:
    """The service's path for an id from the console's URL: `.` and `..` would be dot segments into another route."""
    return "/campaigns/" + quote(checked_id(campaign_id), safe="")


async def _tell(
    request: Request[Any, Any, Any],
    work: Callable[[], Awaitable[Any]],
    *,
    say: Callable[[dict[str, Any]], tuple[str, str]],
    to: str,
) -> Redirect:
    """`act`, when what happened depends on the answer (funded or already funded, how much went back)."""
    try:
        answer = await work()
    except ApiProblem as problem:
        flash(request, "error", problem_text(problem))
    else:
        flash(request, *say(answer if isinstance(answer, dict) else {}))
    return back(to)


class CampaignsController(Controller):
    path = "/campaigns"
    include_in_schema = False

    async def _list(
        self, request: Request[Any, Any, Any], session: Session, *, status_code: int = 200, **extra: Any
    ) -> Response[Any]:
        context: dict[str, Any] = {
            "campaigns": None,
            "problems": [],
            "assets": sorted(ASSETS),
            "errors": {},
            "typed": {},
            "manages": session.viewer.may(Action.MANAGE_POOL),
            **extra,
        }
        try:
            context["campaigns"] = await apis(request).get("rewards", "/campaigns", token=session.token)
        except ApiProblem as problem:
            context["problems"] = [problem]
            status_code = status_for(problem)
        return page(
            request, "campaigns.html", session=session, current_page=Page.CAMPAIGNS, status_code=status_code, **context
        )

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        session: Session,
        campaign_id: str,
        *,
        status_code: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        context: dict[str, Any] = {
            "campaign": None,
            "campaign_id": campaign_id,
            "problems": [],
            "errors": {},
            "typed": {},
            "manages": session.viewer.may(Action.MANAGE_POOL),
            "reference": funding_reference(),
            "reason_max": REASON_MAX,
            **extra,
        }
        try:
            context["campaign"] = await apis(request).get("rewards", _campaign_path(campaign_id), token=session.token)
        except ApiProblem as problem:
            context["problems"] = [problem]
            status_code = status_for(problem)
        return page(
            request,
            "campaigns_detail.html",
            session=session,
            current_page=Page.CAMPAIGNS,
            title=f"Campaign {campaign_id}",
            status_code=status_code,
            **context,
        )

    @get("/")
    async def index(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._list(request, signed_in(request, Page.CAMPAIGNS))

    @post("/")
    async def create(self, request: Request[Any, Any, Any]) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        form = await request.form()
        typed = {k: str(form.get(k) or "").strip() for k in ("campaign_id", "name", "asset", "low_threshold")}
        errors: dict[str, str] = {}
        if not _ID.fullmatch(typed["campaign_id"]):
            errors["campaign_id"] = "A campaign id is 1 to 128 letters, digits and : _ . - (no spaces)"
        if not typed["name"] or len(typed["name"]) > NAME_MAX:
            errors["name"] = f"Give it a name of 1 to {NAME_MAX} characters"
        body: dict[str, Any] = {"campaign_id": typed["campaign_id"], "name": typed["name"], "asset": typed["asset"]}
        if typed["asset"] not in ASSETS:
            errors["asset"] = "Choose one of the assets listed"
        elif typed["low_threshold"]:
            try:
                body["low_threshold"] = parse_major(typed["low_threshold"], typed["asset"])
            except AmountError as err:
                errors["low_threshold"] = str(err)
        if errors:
            return await self._list(request, session, status_code=400, errors=errors, typed=typed)
        try:
            await apis(request).send("POST", "rewards", "/campaigns", token=session.token, body=body)
        except ApiProblem as problem:  # e.g. the id is taken: back to the list, never to someone else's campaign
            flash(request, "error", problem_text(problem))
            return back("/campaigns")
        flash(request, "success", f"Campaign {typed['campaign_id']} created; fund its pool to pay prizes")
        return back(_campaign_path(typed["campaign_id"]))

    @get("/{campaign_id:str}")
    async def show(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        return await self._detail(request, signed_in(request, Page.CAMPAIGNS), campaign_id)

    @post("/{campaign_id:str}/fund")
    async def fund(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        form = await request.form()
        amount_text = str(form.get("amount") or "").strip()
        reference = str(form.get("reference") or "")
        to = _campaign_path(campaign_id)
        if not _ID.fullmatch(reference):
            flash(request, "error", "This form has no funding reference; nothing was funded. Fund again from here.")
            return await self._detail(request, session, campaign_id, status_code=400)
        try:  # the pool's own asset decides the decimals, never a field of the form
            campaign = await apis(request).get("rewards", to, token=session.token)
        except ApiProblem as problem:
            return await self._detail(
                request, session, campaign_id, problems=[problem], status_code=status_for(problem)
            )
        asset = str(campaign["asset"])
        try:
            amount = parse_major(amount_text, asset)
        except AmountError as err:
            return await self._detail(
                request,
                session,
                campaign_id,
                status_code=400,
                reference=reference,
                errors={"amount": str(err)},
                typed={"amount": amount_text},
            )
        return await _tell(
            request,
            lambda: apis(request).send(
                "POST", "rewards", to + "/fund", token=session.token, body={"amount": amount, "reference": reference}
            ),
            say=lambda answer: (
                ("success", f"Funded {format_minor(amount, asset)}")
                if answer.get("applied", True)
                else (
                    "warning",
                    f"This funding ({format_minor(amount, asset)}) was applied already; nothing moved again",
                )
            ),
            to=to,
        )

    @post("/{campaign_id:str}/pause")
    async def pause(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        path = _campaign_path(campaign_id)
        return await act(
            request,
            lambda: apis(request).send("POST", "rewards", path + "/pause", token=session.token),
            done=f"Campaign {campaign_id} paused: its pool pays no new prize until resumed",
            to=path,
        )

    @post("/{campaign_id:str}/resume")
    async def resume(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        path = _campaign_path(campaign_id)
        return await act(
            request,
            lambda: apis(request).send("POST", "rewards", path + "/resume", token=session.token),
            done=f"Campaign {campaign_id} resumed",
            to=path,
        )

    @post("/{campaign_id:str}/close")
    async def close(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        form = await request.form()
        reason = str(form.get("reason") or "").strip()
        errors: dict[str, str] = {}
        if not reason or len(reason) > REASON_MAX:
            errors["close_reason"] = f"Say why, in 1 to {REASON_MAX} characters"
        if form.get("confirm") != "yes":
            errors["confirm"] = "Tick the box to confirm: closing is final"
        if errors:
            return await self._detail(
                request, session, campaign_id, status_code=400, errors=errors, typed={"close_reason": reason}
            )
        path = _campaign_path(campaign_id)

        def said(answer: dict[str, Any]) -> tuple[str, str]:
            swept = int(answer.get("swept") or 0)
            back_to = f"; {format_minor(swept, str(answer.get('asset')))} went back to the treasury" if swept else ""
            return "success", f"Campaign {campaign_id} closed{back_to}"

        return await _tell(
            request,
            lambda: apis(request).send(
                "POST", "rewards", path + "/close", token=session.token, body={"reason": reason}
            ),
            say=said,
            to=path,
        )

    @post("/{campaign_id:str}/held/release")
    async def release_held(self, request: Request[Any, Any, Any], campaign_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.CAMPAIGNS, Action.MANAGE_POOL)
        path = _campaign_path(campaign_id)

        def said(answer: dict[str, Any]) -> tuple[str, str]:
            released, still = len(answer.get("released") or []), int(answer.get("still_held") or 0)
            text = f"{released} held rounds paid; {still} still held"
            return ("success", text) if released or not still else ("warning", text + " (the pool does not cover them)")

        return await _tell(
            request,
            lambda: apis(request).send("POST", "rewards", path + "/held/release", token=session.token),
            say=said,
            to=path,
        )


__all__ = ["CampaignsController", "funding_reference"]
