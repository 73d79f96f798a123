"""`POST /providers/{provider_name}/events`: the one internet-facing endpoint, an ASGI app in front of the
service's Litestar app (which serves health, metrics and the operators' API).

Why not a Litestar route: a provider authenticates with its signature, not a bearer token (every Litestar
route of a service needs one, by design), and the body must be read under the provider's own limit,
streamed, never buffered past it (the runtime's generic guard buffers up to 1 MiB first). It is also the hot
path: decode the request, call `ReceiveWebhook`, answer. Refusals are RFC 9457 problem details, as the
runtime renders them; an outage of PostgreSQL is a 503 with Retry-After (the provider delivers again).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final

from litestar.types import ASGIApp, Receive, Scope, Send

from prizeflow_runtime.errors import UseCaseError
from prizeflow_runtime.http import PROBLEM_JSON, RETRY_AFTER_S
from prizeflow_runtime.outages import is_outage
from prizeflow_webhooks.application.receive import ReceiveWebhook
from prizeflow_webhooks.domain.deliveries import RefusalReason

log = logging.getLogger(__name__)

PREFIX: Final = "/providers/"
SUFFIX: Final = "/events"
_JSON: Final = [(b"content-type", b"application/json")]
_PHRASES: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _ClientGone(Exception):  # noqa: N818 - not an error: the caller hung up mid-body
    pass


class WebhookIngress:
    def __init__(self, app: ASGIApp, receive_webhook: ReceiveWebhook) -> None:
        self.app = app
        self.receive_webhook = receive_webhook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if str(scope["type"]) == "http" else ""
        if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            await self.app(scope, receive, send)
            return
        name = path[len(PREFIX) : -len(SUFFIX)]
        if not name or "/" in name:
            await self.app(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await _problem(send, path, 405, "method_not_allowed", "POST only", headers=[(b"allow", b"POST")])
            return
        try:
            await self._handle(name, path, scope, receive, send)
        except _ClientGone:
            return
        except UseCaseError as err:
            extra = [(b"retry-after", str(RETRY_AFTER_S).encode())] if err.status == 503 else []
            await _problem(send, path, err.status, err.code, err.detail, headers=extra)
        except Exception as err:
            if is_outage(err):
                log.warning("webhook ingress: dependency unavailable (%s)", type(err).__name__)
                await _problem(
                    send,
                    path,
                    503,
                    "service_unavailable",
                    "a database this service needs is unreachable; retry later",
                    headers=[(b"retry-after", str(RETRY_AFTER_S).encode())],
                )
            else:
                log.error("webhook ingress: unexpected error", exc_info=err)
                await _problem(send, path, 500, "internal_error", "an unexpected error occurred; it has been logged")

    async def _handle(self, name: str, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        uc = self.receive_webhook
        provider = uc.provider(name)
        # The headers the provider's scheme reads (its signature's first), each at most once: which of two counts is
        # ambiguous (a proxy may read the other), so none does.
        wanted = {h.encode(): h for h in uc.reader(provider).terms.headers}
        signature_header = next(iter(wanted.values()))
        read: dict[str, str] = {}
        length: int | None = None
        media: list[bytes] = []
        for key, value in scope["headers"]:
            if (header := wanted.get(key)) is not None:
                if header in read:
                    raise uc.refuse(provider, RefusalReason.SIGNATURE_MALFORMED, f"more than one {header} header")
                read[header] = value.decode("latin-1")
            elif key == b"content-length":
                length = int(value) if value.isdigit() else None
            elif key == b"content-type":
                media.append(value)
        if not _json_media(media):
            # Every provider of ours sends JSON: a request declaring anything else (or nothing) is none of their
            # webhooks, refused before its body is read, verified or stored (its signature proves nothing here).
            raise uc.refuse(provider, RefusalReason.UNSUPPORTED_MEDIA_TYPE, "a provider's webhook is application/json")
        limit = provider.max_body_bytes
        if length is not None and length > limit:
            raise uc.refuse(provider, RefusalReason.BODY_TOO_LARGE, f"the body exceeds {limit} bytes")
        body = await _read_body(receive, limit)
        if body is None:
            raise uc.refuse(provider, RefusalReason.BODY_TOO_LARGE, f"the body exceeds {limit} bytes")
        signature = read.pop(signature_header, None)
        receipt = await uc(provider, signature, body, headers=read)
        answer: dict[str, Any] = {"outcome": receipt.outcome.value, "provider_event_id": receipt.provider_event_id}
        if receipt.event_id is not None:
            answer["event_id"] = str(receipt.event_id)
        await _send(send, 200, json.dumps(answer).encode(), _JSON)


def _json_media(values: list[bytes]) -> bool:
    """Exactly one Content-Type, `application/json` (any case, parameters such as `charset=utf-8` allowed)."""
    if len(values) != 1:
        return False
    essence = values[0].split(b";", 1)[0].strip().lower()
    return essence == b"application/json"


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None as soon as it grows past `limit` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _problem(
    send: Send, path: str, status: int, code: str, detail: str, *, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps(
        {
            "type": f"https://prizeflow.dev/problems/{code}",
            "title": _PHRASES.get(status, "Error"),
            "status": status,
            "detail": detail,
            "instance": path,
            "code": code,
        }
    ).encode()
    await _send(send, status, body, [(b"content-type", PROBLEM_JSON.encode()), *(headers or [])])


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    start: Any = {
        "type": "http.response.start",
        "status": status,
        "headers": [*headers, (b"content-length", str(len(body)).encode())],
    }
    await send(start)
    end: Any = {"type": "http.response.body", "body": body}
    await send(end)


__all__ = ["PREFIX", "SUFFIX", "WebhookIngress"]
