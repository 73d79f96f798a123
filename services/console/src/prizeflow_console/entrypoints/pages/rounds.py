"""Rounds: find a round (by id, competition, state), read its transitions and distribution; admins void a round
or settle a stuck or disputed one with results they vouch for. Settlement decides who may, and when."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect
from pydantic import ValidationError

from prizeflow_console.application.ports import ApiProblem
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import Session, act, apis, checked_id, may, page, signed_in, status_for
from prizeflow_contracts.events.game import MAX_PLACEMENTS, Placement, check_placements
from prizeflow_contracts.events.settlement import RoundState
from prizeflow_contracts.ids import IDENTIFIER_PATTERN
from prizeflow_runtime.params import IdentifierPath

_ID: Final = re.compile(IDENTIFIER_PATTERN)
STATES: Final = tuple(s.value for s in RoundState)
PAGE_SIZE: Final = 50
REASON_MAX: Final = 900  # settlement's AdminReason: room for its "admin: " prefix in the contract's 1000 chars
VOIDABLE: Final = frozenset({RoundState.OPEN, RoundState.CLOSED, RoundState.RESOLVED})
Text = Annotated[str | None, QueryParameter(max_length=512)]


class PlacementsError(ValueError):
    """Typed results the round cannot be settled with; the message says which line and why."""


def parse_placements(text: str) -> list[dict[str, Any]]:
    """One placed player a line, `player id, rank, score` (commas or spaces), checked as settlement checks them
    (the contract's `Placement` and its standard competition ranking) before anything is sent."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise PlacementsError("enter at least one line: player id, rank, score")
    if len(lines) > MAX_PLACEMENTS:
        raise PlacementsError(f"at most {MAX_PLACEMENTS} placements")
    placements: list[Placement] = []
    for number, line in enumerate(lines, start=1):
        parts = [p for p in re.split(r"[,\s]+", line) if p]
        if len(parts) != 3:
            raise PlacementsError(f"line {number}: write player id, rank, score")
        player_id, rank, score = parts
        if not re.fullmatch(r"\d{1,6}", rank) or not re.fullmatch(r"-?\d{1,18}", score):
            raise PlacementsError(f"line {number}: rank and score are whole numbers")
        try:
            placements.append(Placement(player_id=player_id, rank=int(rank), score=int(score)))
        except ValidationError as err:
            field = str(err.errors()[0]["loc"][0]) if err.errors() and err.errors()[0]["loc"] else "value"
            raise PlacementsError(f"line {number}: {field} is not valid") from err
    try:
        check_placements(placements)
    except ValueError as err:
        raise PlacementsError(str(err)) from err
    return [p.model_dump() for p in placements]


def _round_path(round_id: str) -> str:
    """The service's path for an id from the console's URL: `.` and `..` would be dot segments into another route."""
    return "/rounds/" + quote(checked_id(round_id), safe="")


def _placements_text(found: dict[str, Any]) -> str:
    """The reported results, ready to confirm, when the round holds all of them (the summary keeps a sample)."""
    summary = found.get("results_summary") or {}
    top = summary.get("top") or []
    if not top or summary.get("placement_count") != len(top):
        return ""
    return "\n".join(f"{p['player_id']}, {p['rank']}, {p['score']}" for p in top)


class RoundsController(Controller):
    path = "/rounds"
    include_in_schema = False

    @get("/")
    async def search(  # noqa: PLR0917 - one argument per filter of the form
        self,
        request: Request[Any, Any, Any],
        round_id: Text = None,
        competition_id: Text = None,
        round_state: Annotated[str | None, QueryParameter(name="state", max_length=32)] = None,
        disputed: Annotated[str | None, QueryParameter(max_length=8)] = None,
        cursor: Text = None,
    ) -> Response[Any]:
        session = signed_in(request, Page.ROUNDS)
        wanted = (round_id or "").strip()
        filters = {
            "competition_id": (competition_id or "").strip(),
            "state": (round_state or "").strip(),
            "disputed": (disputed or "").strip(),
        }
        errors: dict[str, str] = {}
        if wanted and not _ID.fullmatch(wanted):
            errors["round_id"] = "A round id is 1 to 128 letters, digits and : _ . - (no spaces)"
        elif wanted:
            return Redirect(path=_round_path(wanted), status_code=303)
        if filters["competition_id"] and not _ID.fullmatch(filters["competition_id"]):
            errors["competition_id"] = "A competition id is 1 to 128 letters, digits and : _ . - (no spaces)"
        if filters["state"] and filters["state"] not in STATES:
            errors["state"] = "Choose one of the states listed"
        if filters["disputed"] not in {"", "true", "false"}:
            errors["disputed"] = "Choose any, disputed or not disputed"
        context: dict[str, Any] = {
            "filters": filters,
            "round_id": wanted,
            "states": STATES,
            "errors": errors,
            "items": None,
            "next_url": None,
            "first_url": None,
            "problems": [],
        }
        if errors:
            return page(request, "rounds.html", session=session, current_page=Page.ROUNDS, status_code=400, **context)
        query = {k: v for k, v in filters.items() if v}
        try:
            answer = await apis(request).get(
                "settlement", "/rounds", token=session.token, query={**query, "cursor": cursor, "limit": PAGE_SIZE}
            )
        except ApiProblem as problem:
            context["problems"] = [problem]
            return page(
                request,
                "rounds.html",
                session=session,
                current_page=Page.ROUNDS,
                status_code=status_for(problem),
                **context,
            )
        context["items"] = answer.get("items") or []
        if next_cursor := answer.get("next_cursor"):
            context["next_url"] = "/rounds?" + urlencode({**query, "cursor": next_cursor})
        if cursor:
            context["first_url"] = "/rounds" + (f"?{urlencode(query)}" if query else "")
        return page(request, "rounds.html", session=session, current_page=Page.ROUNDS, **context)

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        session: Session,
        round_id: str,
        *,
        status_code: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        title = f"Round {round_id}"
        try:
            found = await apis(request).get("settlement", _round_path(round_id), token=session.token)
        except ApiProblem as problem:
            return page(
                request,
                "rounds_detail.html",
                session=session,
                current_page=Page.ROUNDS,
                title=title,
                round=None,
                round_id=round_id,
                problems=[problem],
                status_code=status_for(problem),
            )
        state = RoundState(found["state"]) if found.get("state") in STATES else None
        decides = session.viewer.may(Action.DECIDE_ROUND)
        may_resolve = state in {RoundState.CLOSED, RoundState.RESOLVED} or (
            state is RoundState.SETTLED and bool(found.get("disputed"))
        )
        context: dict[str, Any] = {
            "round": found,
            "round_id": round_id,
            "spec": found.get("spec") or {},
            "summary": found.get("results_summary") or None,
            "may_void": decides and state in VOIDABLE,
            "may_resolve": decides and may_resolve,
            "placements_text": _placements_text(found),
            "reason_max": REASON_MAX,
            "errors": {},
            "typed": {},
            "problems": [],
            **extra,
        }
        return page(
            request,
            "rounds_detail.html",
            session=session,
            current_page=Page.ROUNDS,
            title=title,
            status_code=status_code,
            **context,
        )

    @get("/{round_id:str}")
    async def show(self, request: Request[Any, Any, Any], round_id: IdentifierPath) -> Response[Any]:
        session = signed_in(request, Page.ROUNDS)
        return await self._detail(request, session, round_id)

    @post("/{round_id:str}/void")
    async def void(self, request: Request[Any, Any, Any], round_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.ROUNDS, Action.DECIDE_ROUND)
        form = await request.form()
        reason = str(form.get("reason") or "").strip()
        if not reason or len(reason) > REASON_MAX:
            return await self._detail(
                request,
                session,
                round_id,
                status_code=400,
                typed={"void_reason": reason},
                errors={"void_reason": f"Say why, in 1 to {REASON_MAX} characters"},
            )
        return await act(
            request,
            lambda: apis(request).send(
                "POST", "settlement", _round_path(round_id) + "/void", token=session.token, body={"reason": reason}
            ),
            done=f"Round {round_id} voided; its entry fees are owed back",
            to=_round_path(round_id),
        )

    @post("/{round_id:str}/resolve")
    async def resolve(self, request: Request[Any, Any, Any], round_id: IdentifierPath) -> Response[Any]:
        session = may(request, Page.ROUNDS, Action.DECIDE_ROUND)
        form = await request.form()
        text = str(form.get("placements") or "")
        reason = str(form.get("reason") or "").strip()
        errors: dict[str, str] = {}
        placements: list[dict[str, Any]] = []
        try:
            placements = parse_placements(text)
        except PlacementsError as err:
            errors["placements"] = str(err)
        if not reason or len(reason) > REASON_MAX:
            errors["resolve_reason"] = f"Say why, in 1 to {REASON_MAX} characters"
        if errors:
            return await self._detail(
                request,
                session,
                round_id,
                status_code=400,
                errors=errors,
                typed={"placements": text, "resolve_reason": reason},
            )
        return await act(
            request,
            lambda: apis(request).send(
                "POST",
                "settlement",
                _round_path(round_id) + "/resolve",
                token=session.token,
                body={"placements": placements, "reason": reason},
            ),
            done=f"Round {round_id} resolved with {len(placements)} placements",
            to=_round_path(round_id),
        )


__all__ = ["PlacementsError", "RoundsController", "parse_placements"]
