"""Dead letters: what each service's consumers refused, by service and topic, with why; inspect one, then redrive
it (the consumer applies it now) or discard it. The services audit both and refuse what cannot apply."""

from __future__ import annotations

from typing import Annotated, Any, Final, cast

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter

from prizeflow_console.application.dead_letters import (
    DEAD_LETTER_SERVICES,
    STATUSES,
    LetterFilter,
    ListDeadLetters,
    redrivable,
    shown_headers,
    shown_payload,
)
from prizeflow_console.application.ports import ApiProblem, Service
from prizeflow_console.domain.viewer import Action, Page
from prizeflow_console.entrypoints.web import Session, act, apis, may, page, signed_in, status_for
from prizeflow_runtime.params import IdentifierPath, SerialPath

REASON_MAX: Final = 1000  # the contract's Reason (prizeflow_runtime.admin_http.DecisionBody)
Text = Annotated[str | None, QueryParameter(max_length=256)]


def _service(name: str) -> Service:
    if name not in DEAD_LETTER_SERVICES:
        raise NotFoundException(f"no service {name} with dead letters")
    return name


def _letter_path(service: str, dead_letter_id: int) -> str:
    return f"/dead-letters/{service}/{dead_letter_id}"


class DeadLettersController(Controller):
    path = "/dead-letters"
    include_in_schema = False

    @get("/")
    async def board(  # noqa: PLR0917 - one argument per filter of the form
        self,
        request: Request[Any, Any, Any],
        service: Text = None,
        status: Text = None,
        reason: Text = None,
        topic: Text = None,
        after: Annotated[int | None, QueryParameter(ge=0)] = None,
    ) -> Response[Any]:
        session = signed_in(request, Page.DEAD_LETTERS)
        chosen = {
            "service": (service or "").strip(),
            "status": (status or "open").strip(),
            "reason": (reason or "").strip(),
            "topic": (topic or "").strip(),
        }
        errors: dict[str, str] = {}
        if chosen["service"] and chosen["service"] not in DEAD_LETTER_SERVICES:
            errors["service"] = "Choose one of the services listed"
        if chosen["status"] not in STATUSES:
            errors["status"] = "Choose one of the statuses listed"
        context: dict[str, Any] = {
            "chosen": chosen,
            "errors": errors,
            "services": DEAD_LETTER_SERVICES,
            "statuses": STATUSES,
            "board": None,
            "after": after,
        }
        if errors:
            return page(
                request,
                "dead_letters.html",
                session=session,
                current_page=Page.DEAD_LETTERS,
                status_code=400,
                **context,
            )
        wanted = LetterFilter(
            service=cast("Service", chosen["service"]) if chosen["service"] else None,
            status=chosen["status"],
            reason=chosen["reason"] or None,
            topic=chosen["topic"] or None,
            after=after,
        )
        context["board"] = await ListDeadLetters(apis(request))(wanted, token=session.token)
        return page(request, "dead_letters.html", session=session, current_page=Page.DEAD_LETTERS, **context)

    async def _detail(
        self,
        request: Request[Any, Any, Any],
        session: Session,
        service: Service,
        dead_letter_id: int,
        *,
        status_code: int = 200,
        **extra: Any,
    ) -> Response[Any]:
        title = f"Dead letter {dead_letter_id} of {service}"
        context: dict[str, Any] = {
            "letter": None,
            "service": service,
            "dead_letter_id": dead_letter_id,
            "problems": [],
            "errors": {},
            "typed": {},
            "reason_max": REASON_MAX,
        }
        try:
            letter = await apis(request).get(service, f"/admin/dead-letters/{dead_letter_id}", token=session.token)
        except ApiProblem as problem:
            context["problems"] = [problem]
            status_code = status_for(problem)
        else:
            payload, cut = shown_payload(str(letter.get("value") or ""))
            decides = session.viewer.may(Action.REDRIVE) and letter.get("status") == "open"
            context.update(
                letter=letter,
                payload=payload,
                payload_cut=cut,
                headers=shown_headers(letter.get("headers")),
                may_redrive=decides and redrivable(letter),
                may_discard=decides,
            )
        context.update(extra)
        return page(
            request,
            "dead_letters_detail.html",
            session=session,
            current_page=Page.DEAD_LETTERS,
            title=title,
            status_code=status_code,
            **context,
        )

    @get("/{service:str}/{dead_letter_id:str}")
    async def show(
        self, request: Request[Any, Any, Any], service: IdentifierPath, dead_letter_id: SerialPath
    ) -> Response[Any]:
        session = signed_in(request, Page.DEAD_LETTERS)
        return await self._detail(request, session, _service(service), dead_letter_id)

    async def _decide(
        self, request: Request[Any, Any, Any], service: str, dead_letter_id: int, decision: str
    ) -> Response[Any]:
        session = may(request, Page.DEAD_LETTERS, Action.REDRIVE)
        svc = _service(service)
        form = await request.form()
        reason = str(form.get("reason") or "").strip()
        if not reason or len(reason) > REASON_MAX:
            return await self._detail(
                request,
                session,
                svc,
                dead_letter_id,
                status_code=400,
                errors={f"{decision}_reason": f"Say why, in 1 to {REASON_MAX} characters"},
                typed={f"{decision}_reason": reason},
            )
        done = {
            "redrive": f"Dead letter {dead_letter_id} redriven: {service} applied it",
            "discard": f"Dead letter {dead_letter_id} discarded: it stays refused",
        }[decision]
        return await act(
            request,
            lambda: apis(request).send(
                "POST",
                svc,
                f"/admin/dead-letters/{dead_letter_id}/{decision}",
                token=session.token,
                body={"reason": reason},
            ),
            done=done,
            to=_letter_path(service, dead_letter_id),
        )

    @post("/{service:str}/{dead_letter_id:str}/redrive")
    async def redrive(
        self, request: Request[Any, Any, Any], service: IdentifierPath, dead_letter_id: SerialPath
    ) -> Response[Any]:
        return await self._decide(request, service, dead_letter_id, "redrive")

    @post("/{service:str}/{dead_letter_id:str}/discard")
    async def discard(
        self, request: Request[Any, Any, Any], service: IdentifierPath, dead_letter_id: SerialPath
    ) -> Response[Any]:
        return await self._decide(request, service, dead_letter_id, "discard")


__all__ = ["DeadLettersController"]
