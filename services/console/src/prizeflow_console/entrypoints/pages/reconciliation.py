"""Reconciliation: runs per rail and a run on demand; the exception queue, one exception with both sides side by
side and the actions this person may take on it; the finance exports, streamed from the services to the browser.

The console only decides what to offer (`domain.reconciliation.offer`); payouts refuses a proposer approving their
own proposal, a second person without approver/admin, a different action while a proposal stands, and its problem
detail is shown as the page's alert."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Final
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Stream, Template

from prizeflow_console.application.ports import ApiProblem, Download, Downloads
from prizeflow_console.application.reconciliation import (
    EXPORT_LIST,
    EXPORTS_BY_NAME,
    PAGE_SIZE,
    ExceptionFilter,
    Export,
    ListExceptions,
    ListRuns,
    OpenExport,
    OpenMyHistory,
    OpenPlayerHistory,
    Period,
    ResolveException,
    RunWindow,
    ShowException,
    TakeException,
)
from prizeflow_console.domain.reconciliation import (
    KIND_WORDS,
    KINDS,
    NEEDS_WITHDRAWAL_ID,
    SEVERITIES,
    STATES,
    action_words,
    is_money_action,
    offer,
    side_by_side,
    window_words,
)
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import Session, apis, back, flash, may, page, problem_text, signed_in, status_for
from prizeflow_contracts.money import ASSETS
from prizeflow_contracts.reconciliation import ExceptionState
from prizeflow_runtime.params import SerialPath

log = logging.getLogger("prizeflow_console.reconciliation")
REASON_MAX: Final = 1000  # the services' `Reason` (1-1000 characters)
_PROVIDER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
_PERSON: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.@\-]{0,199}$")
_PLAYER: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,127}$")
_ACTION: Final = re.compile(r"^[a-z][a-z_]{0,63}$")
_WITHDRAWAL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_.\-]{0,199}$")
ASSET_CODES: Final = tuple(sorted(ASSETS))
MY_HISTORY_DAYS: Final = 365  # the wallet link's period, up to today (rewards takes at most 366 days at once)
Text = Annotated[str | None, QueryParameter(max_length=256)]


def _clean(value: Any, limit: int = 256) -> str:
    return value.strip()[:limit] if isinstance(value, str) else ""


def _moment(text: str) -> datetime | None:
    """A `datetime-local` field's value (or an ISO 8601 instant), read as UTC."""
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _period(since: str | None, through: str | None, errors: dict[str, str]) -> Period | None:
    """From the first day to the last, both included (what finance asks for): [since 00:00, through+1 00:00) UTC."""
    first, last = _day(_clean(since)), _day(_clean(through))
    if first is None:
        errors["since"] = "Choose the first day of the period"
    if last is None:
        errors["through"] = "Choose the last day of the period"
    if first is None or last is None:
        return None
    if last < first:
        errors["through"] = "The last day cannot be before the first"
        return None
    return Period(datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC))


def _filename(stem: str, period: Period | None) -> str:
    if period is None:
        return f"{stem}.csv"
    last = (period.until - timedelta(days=1)).date()
    return f"{stem}-{period.since.date().isoformat()}-to-{last.isoformat()}.csv"


def _downloads(request: Request[Any, Any, Any]) -> Downloads:
    found = request.app.state.get("downloads")
    if not isinstance(found, Downloads):
        raise ApiProblem(503, "exports_unavailable", "Exports unavailable", "this console cannot stream exports")
    return found


def stream_csv(download: Download, filename: str) -> Stream:
    """The service's body passed on chunk by chunk as it arrives (never held whole), with its own media type and a
    file name for the browser."""
    return Stream(
        content=download.chunks,
        media_type=download.media_type,
        # As the service said it (Litestar would append a second charset to a `text/` media type of its own).
        headers={"content-type": download.media_type, "content-disposition": f'attachment; filename="{filename}"'},
    )


class ReconciliationController(Controller):
    path = "/reconciliation"
    include_in_schema = False

    @get("/")
    async def runs(self, request: Request[Any, Any, Any], provider: Text = None) -> Template:
        session = signed_in(request, Page.RECONCILIATION)
        chosen = _clean(provider)
        errors = {}
        if chosen and not _PROVIDER.fullmatch(chosen):
            errors["provider"] = "A provider name is letters, digits, _ and -"
        listed = None
        if not errors:
            listed = await ListRuns(apis(request))(token=session.token, provider=chosen or None)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        window = {"provider": chosen, "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                  "until": now.strftime("%Y-%m-%dT%H:%M")}  # fmt: skip
        providers = sorted({str(r.get("provider")) for r in (listed.runs if listed else []) if r.get("provider")})
        return page(request, "reconciliation.html", session=session, current_page=Page.RECONCILIATION,
                    listed=listed, chosen=chosen, errors=errors, window=window, providers=providers,
                    window_words=window_words,
                    may_run=session.viewer.may(Action.RUN_RECONCILIATION),
                    status_code=400 if errors else status_for(listed.problem) if listed and listed.problem else 200,
                    )  # fmt: skip

    @post("/runs")
    async def run(self, request: Request[Any, Any, Any]) -> Redirect:
        """Post/Redirect/Get: the run's outcome (or payouts' problem detail) is the runs page's message."""
        session = may(request, Page.RECONCILIATION, Action.RUN_RECONCILIATION)
        form = await request.form()
        provider = _clean(form.get("provider"), 64)
        since, until = _moment(_clean(form.get("since"), 40)), _moment(_clean(form.get("until"), 40))
        if not _PROVIDER.fullmatch(provider):
            flash(request, "error", "Name the provider to reconcile: letters, digits, _ and -.")
        elif since is None or until is None:
            flash(request, "error", "Give the window's start and end (UTC).")
        elif since >= until:
            flash(request, "error", "The window's end must come after its start.")
        else:
            try:
                run = await RunWindow(apis(request))(provider, since, until, token=session.token)
            except ApiProblem as problem:
                flash(request, "error", problem_text(problem))
            else:
                flash(request, "error" if run.get("state") == "failed" else "success", _run_words(run))
        return back("/reconciliation", provider=provider if _PROVIDER.fullmatch(provider) else None)


def _run_words(run: Mapping[str, Any]) -> str:
    state = run.get("state")
    words = (f"Run {run.get('run_id')} of {run.get('provider')} {state}: {run.get('lines')} lines, "
             f"{run.get('matched')} matched, {run.get('exceptions')} exceptions.")  # fmt: skip
    if state == "failed" and run.get("error"):
        words += f" Error: {run.get('error')}"
    return words


def _exception_path(exception_id: int) -> str:
    return f"/exceptions/{exception_id}"


def _queue_filters(typed: Mapping[str, str | None], offset: int) -> tuple[ExceptionFilter, dict[str, str]]:
    state, kind, provider, severity, owner = (
        _clean(typed.get(name)) or None for name in ("state", "kind", "provider", "severity", "owner")
    )
    errors = {}
    if state and state not in STATES:
        errors["state"] = "Choose one of the states listed"
    if kind and kind not in KINDS:
        errors["kind"] = "Choose one of the kinds listed"
    if severity and severity not in SEVERITIES:
        errors["severity"] = "Choose one of the severities listed"
    if provider and not _PROVIDER.fullmatch(provider):
        errors["provider"] = "A provider name is letters, digits, _ and -"
    if owner and not _PERSON.fullmatch(owner):
        errors["owner"] = "An owner is the person's user id"
    return ExceptionFilter(state, kind, provider, severity, owner, offset), errors


class ExceptionsController(Controller):
    path = "/exceptions"
    include_in_schema = False

    @get("/")
    async def queue(  # noqa: PLR0917 - one argument per filter of the form
        self,
        request: Request[Any, Any, Any],
        state_: Annotated[str | None, QueryParameter(name="state", max_length=256)] = None,  # `state`: Litestar's
        kind: Text = None,
        provider: Text = None,
        severity: Text = None,
        owner: Text = None,
        offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0,
    ) -> Template:
        session = signed_in(request, Page.EXCEPTIONS)
        typed = {"state": state_, "kind": kind, "provider": provider, "severity": severity, "owner": owner}
        filters, errors = _queue_filters(typed, offset)
        context: dict[str, Any] = {"filters": filters, "errors": errors, "kinds": KINDS, "states": STATES,
                                   "severities": SEVERITIES, "queue": None, "page_size": PAGE_SIZE}  # fmt: skip
        if errors:
            return page(request, "exceptions.html", session=session, current_page=Page.EXCEPTIONS, status_code=400,
                        **context)  # fmt: skip
        context["queue"] = queue = await ListExceptions(apis(request))(filters, token=session.token)
        return page(request, "exceptions.html", session=session, current_page=Page.EXCEPTIONS,
                    status_code=status_for(queue.problem) if queue.problem else 200, **context)  # fmt: skip

    @get("/{exception_id:str}")
    async def detail(self, request: Request[Any, Any, Any], exception_id: SerialPath) -> Template:
        session = signed_in(request, Page.EXCEPTIONS)
        title = f"Exception {exception_id}"
        try:
            found = await ShowException(apis(request))(exception_id, token=session.token)
        except ApiProblem as problem:
            return page(request, "exceptions_detail.html", session=session, current_page=Page.EXCEPTIONS,
                        title=title, exception=None, problem=problem, status_code=status_for(problem))  # fmt: skip
        theirs = found.get("theirs")
        return page(
            request, "exceptions_detail.html", session=session, current_page=Page.EXCEPTIONS,
            title=f"{title}: {str(found.get('kind') or '').replace('_', ' ')}", exception=found, problem=None,
            sides=side_by_side(found.get("ours") if isinstance(found.get("ours"), dict) else None,
                               theirs if isinstance(theirs, list) else []),
            offer=offer(session.viewer, found), kind_words=KIND_WORDS, action_words=action_words,
            needs_withdrawal_id=NEEDS_WITHDRAWAL_ID, base=_exception_path(exception_id), reason_max=REASON_MAX,
        )  # fmt: skip

    @post("/{exception_id:str}/take")
    async def take(self, request: Request[Any, Any, Any], exception_id: SerialPath) -> Redirect:
        session = may(request, Page.EXCEPTIONS, Action.WORK_EXCEPTION)
        form = await request.form()
        reason = _clean(form.get("reason"), REASON_MAX + 1)
        if len(reason) > REASON_MAX:
            flash(request, "error", f"A note is at most {REASON_MAX} characters.")
            return back(_exception_path(exception_id))
        try:
            await TakeException(apis(request))(exception_id, token=session.token, reason=reason or None)
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            flash(request, "success", f"You took exception {exception_id}: it is yours to investigate.")
        return back(_exception_path(exception_id))

    @post("/{exception_id:str}/resolve")
    async def resolve(self, request: Request[Any, Any, Any], exception_id: SerialPath) -> Redirect:
        """Acknowledge, propose, or approve the standing proposal: one call to payouts, which says which it was."""
        session = may(request, Page.EXCEPTIONS, Action.WORK_EXCEPTION)
        to = _exception_path(exception_id)
        form = await request.form()
        action = _clean(form.get("action"), 64)
        reason = _clean(form.get("reason"), REASON_MAX + 1)
        withdrawal_id = _clean(form.get("withdrawal_id"), 201) or None
        if not _ACTION.fullmatch(action):
            flash(request, "error", "Choose an action this exception offers.")
            return back(to)
        if not reason or len(reason) > REASON_MAX:
            flash(request, "error", f"Say why: a reason of 1 to {REASON_MAX} characters is required.")
            return back(to)
        if action in NEEDS_WITHDRAWAL_ID and not (withdrawal_id and _WITHDRAWAL.fullmatch(withdrawal_id)):
            flash(request, "error", "Give the exchange's withdrawal id (letters, digits and : _ . -).")
            return back(to)
        if action not in NEEDS_WITHDRAWAL_ID:
            withdrawal_id = None
        try:
            answer = await ResolveException(apis(request))(
                exception_id, action, reason, token=session.token, withdrawal_id=withdrawal_id
            )
        except ApiProblem as problem:
            flash(request, "error", problem_text(problem))
        else:
            flash(request, "success", _resolved_words(action, answer))
        return back(to)


def _resolved_words(action: str, answer: Mapping[str, Any]) -> str:
    """What payouts did: resolved it, or recorded a proposal for a second person (any money action, and on a
    critical kind an acknowledgement too: payouts' answer carries the proposal)."""
    if answer.get("state") == ExceptionState.RESOLVED:
        return f"Resolved: {action_words(action)}."
    if is_money_action(action) or answer.get("proposal"):
        return f"Proposed: {action_words(action)}. A second person, an approver or an admin, must approve it."
    return f"Done: {action_words(action)}."


class ExportsController(Controller):
    path = "/exports"
    include_in_schema = False

    def _form(
        self, request: Request[Any, Any, Any], session: Session, *, errors: dict[str, str] | None = None,
        typed: Mapping[str, str] | None = None, problem: ApiProblem | None = None, status_code: int = 200,
    ) -> Template:  # fmt: skip
        # This month so far; on the first of a month, the month just closed.
        last = datetime.now(UTC).date() - timedelta(days=1)
        first = last.replace(day=1)
        values = {"since": first.isoformat(), "through": last.isoformat(), **(typed or {})}
        return page(request, "exports.html", session=session, current_page=Page.EXPORTS, exports=EXPORT_LIST,
                    errors=errors or {}, typed=values, problem=problem, assets=ASSET_CODES,
                    status_code=status_code)  # fmt: skip

    @get("/")
    async def show(self, request: Request[Any, Any, Any]) -> Template:
        session = signed_in(request, Page.EXPORTS)
        return self._form(request, session)

    async def _export(  # noqa: PLR0917 - the export and the form's fields
        self,
        request: Request[Any, Any, Any],
        export: Export,
        since: str | None,
        through: str | None,
        provider: str | None,
        asset: str | None,
    ) -> Response[Any]:
        session = signed_in(request, Page.EXPORTS)
        errors: dict[str, str] = {}
        typed = {"export": export.name, "since": _clean(since), "through": _clean(through),
                 "provider": _clean(provider), "asset": _clean(asset)}  # fmt: skip
        period = _period(since, through, errors)
        if typed["provider"] and not _PROVIDER.fullmatch(typed["provider"]):
            errors["provider"] = "A provider name is letters, digits, _ and -"
        if typed["asset"] and typed["asset"] not in ASSETS:
            errors["asset"] = "Choose one of the assets listed"
        if errors or period is None:
            return self._form(request, session, errors=errors, typed=typed, status_code=400)
        try:
            download = await OpenExport(_downloads(request))(
                export, period, token=session.token,
                filters={"provider": typed["provider"] or None, "asset": typed["asset"] or None},
            )  # fmt: skip
        except ApiProblem as problem:
            return self._form(request, session, typed=typed, problem=problem, status_code=status_for(problem))
        return stream_csv(download, _filename(export.name, period))

    @get("/ledger.csv")
    async def ledger(self, request: Request[Any, Any, Any], since: Text = None, through: Text = None,
                     asset: Text = None) -> Response[Any]:  # fmt: skip
        return await self._export(request, EXPORTS_BY_NAME["ledger"], since, through, None, asset)

    @get("/payouts.csv")
    async def payouts(
        self, request: Request[Any, Any, Any], since: Text = None, through: Text = None, provider: Text = None,
        asset: Text = None,
    ) -> Response[Any]:  # fmt: skip
        return await self._export(request, EXPORTS_BY_NAME["payouts"], since, through, provider, asset)

    @get("/reconciliation.csv")
    async def reconciliation(self, request: Request[Any, Any, Any], since: Text = None, through: Text = None,
                             provider: Text = None) -> Response[Any]:  # fmt: skip
        return await self._export(request, EXPORTS_BY_NAME["reconciliation"], since, through, provider, None)

    @get("/history.csv")
    async def player_history(self, request: Request[Any, Any, Any], player_id: Text = None, since: Text = None,
                             through: Text = None) -> Response[Any]:  # fmt: skip
        session = signed_in(request, Page.EXPORTS)
        errors: dict[str, str] = {}
        player = _clean(player_id)
        typed = {"export": "history", "player_id": player, "since": _clean(since), "through": _clean(through)}
        period = _period(since, through, errors)
        if not _PLAYER.fullmatch(player):
            errors["player_id"] = "A player id is 1 to 128 letters, digits and : _ . -"
        if errors or period is None:
            return self._form(request, session, errors=errors, typed=typed, status_code=400)
        try:
            download = await OpenPlayerHistory(_downloads(request))(player, period, token=session.token)
        except ApiProblem as problem:
            return self._form(request, session, typed=typed, problem=problem, status_code=status_for(problem))
        return stream_csv(download, _filename(f"history-{quote(player, safe='')}", period))


async def my_history(request: Request[Any, Any, Any], session: Session, since: str | None,
                     through: str | None) -> Stream | None:  # fmt: skip
    """The signed-in player's own history as CSV (rewards reads the player from the token, never a parameter): the
    days typed, or the last twelve months to today; None when the period typed is not one (the wallet says so). A
    refusal raises its problem detail."""
    if since or through:
        period = _period(since, through, {})
        if period is None:
            return None
    else:
        today = datetime.now(UTC).date()
        period = _period((today - timedelta(days=MY_HISTORY_DAYS - 1)).isoformat(), today.isoformat(), {})
        assert period is not None
    download = await OpenMyHistory(_downloads(request))(token=session.token, period=period)
    return stream_csv(download, _filename("my-history", period))


__all__ = ["ExceptionsController", "ExportsController", "ReconciliationController", "my_history"]
