"""Timeline: everything that happened to one correlation id, across the services, in time order."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template

from prizeflow_console.application.timeline import TraceFlow
from prizeflow_console.domain.viewer import Page
from prizeflow_console.entrypoints.web import page, signed_in
from prizeflow_contracts.envelope import CORRELATION_ID_PATTERN

_CID = re.compile(CORRELATION_ID_PATTERN)  # the services' contract, checked before any call


class TimelineController(Controller):
    path = "/timeline"
    include_in_schema = False

    @get("/")
    async def show(
        self,
        request: Request[Any, Any, Any],
        trace: NamedDependency[TraceFlow],
        correlation_id: Annotated[str | None, QueryParameter(max_length=256)] = None,
    ) -> Template:
        session = signed_in(request, Page.TIMELINE)
        cid = (correlation_id or "").strip()
        if not cid:
            return page(request, "timeline.html", session=session, current_page=Page.TIMELINE, cid="", result=None)
        if not _CID.fullmatch(cid):
            return page(request, "timeline.html", session=session, current_page=Page.TIMELINE, cid=cid, result=None,
                        field_error="A correlation id is 1 to 128 letters, digits and : _ . - (no spaces)",
                        status_code=400)  # fmt: skip
        result = await trace(cid, token=session.token)
        return page(request, "timeline.html", session=session, current_page=Page.TIMELINE, cid=cid, result=result)


__all__ = ["TimelineController"]
