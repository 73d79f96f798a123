"""How a scripted fault strikes one API call: the same for every emulator, only the refusal's shape is theirs."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from prizeflow_emulator_kit.faults import FaultKind, FaultRule
from prizeflow_emulator_kit.requests import RequestEntry

RESET_STATUS = 499  # what the request log shows for a call whose connection was cut (nginx's "client closed")

Refuse = Callable[[FaultRule], web.StreamResponse]
"""The emulator's error answer for a refusing kind (rate_limit, server_error, api_error, outage,
server_error_after_success)."""


def reset_connection(request: web.Request) -> web.Response:
    """Cut the TCP connection with a RST (SO_LINGER 0), as a load balancer dropping it would."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=RESET_STATUS)


async def strike(
    fault: FaultRule | None,
    request: web.Request,
    carry_out: Callable[[], Awaitable[web.StreamResponse]],
    refuse: Refuse,
    entry: RequestEntry | None = None,
) -> web.StreamResponse:
    """Answer the call as `fault` says. Before processing: cut or refused, `carry_out` never runs. After: the call
    is carried out and, only if it succeeded (an answer below 400), its answer is cut, replaced by the refusal or
    held back `delay_ms` — after the client has given up; `ledger_delay` is the emulator's to apply in
    `carry_out`. The entry records the status and the fault that struck."""
    response: web.StreamResponse
    if fault is not None and not fault.kind.after_processing:
        _struck(entry, fault)
        response = reset_connection(request) if fault.kind is FaultKind.CONNECTION_RESET else refuse(fault)
        return _finish(entry, response)
    response = await carry_out()
    if fault is None or response.status >= 400:
        return _finish(entry, response)
    _struck(entry, fault)
    if fault.kind is FaultKind.DROP_AFTER_SUCCESS:
        return _finish(entry, reset_connection(request))
    if fault.kind is FaultKind.SERVER_ERROR_AFTER_SUCCESS:
        return _finish(entry, refuse(fault))
    if fault.kind is FaultKind.TIMEOUT_AFTER_SUCCESS:
        _finish(entry, response)
        await asyncio.sleep(fault.delay_ms / 1000)  # the fault itself: the answer comes after the client gave up
    return _finish(entry, response)


def _struck(entry: RequestEntry | None, fault: FaultRule) -> None:
    if entry is not None:
        entry.fault = fault.kind.value


def _finish(entry: RequestEntry | None, response: web.StreamResponse) -> web.StreamResponse:
    if entry is not None:
        entry.status = response.status
    return response


__all__ = ["RESET_STATUS", "Refuse", "reset_connection", "strike"]
