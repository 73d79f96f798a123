"""The ingress ASGI app on fakes (no socket): limits before reading, problem details, 2xx only after the write."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, cast

import pytest
from litestar.types import Receive, Scope, Send
from webhooks_fakes import SANDBOX_SECRET, FakeWriter, ingress, metric, sandbox_payout, signed

from prizeflow_contracts.envelope import StagedEvent
from prizeflow_webhooks.application.ports import NewDelivery
from prizeflow_webhooks.entrypoints.ingress import WebhookIngress

Message = dict[str, Any]


class Behind:
    """The Litestar app behind the ingress: records what reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: WebhookIngress,
    path: str,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[bytes, bytes]] = (),
    method: str = "POST",
) -> tuple[int, dict[str, str], Any, int]:
    """(status, headers, JSON body, chunks the app read)."""
    scope = {"type": "http", "method": method, "path": path, "headers": list(headers)}
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)] or [
        {"type": "http.request", "body": b"", "more_body": False}
    ]
    read = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(cast("Scope", scope), cast("Receive", receive), cast("Send", send))
    start, body = sent
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], out_headers, json.loads(body["body"]) if body["body"] else None, read


def app_with(writer: FakeWriter | None = None) -> tuple[WebhookIngress, Behind, Any, Any]:
    uc, writer, _, m = ingress(writer)
    behind = Behind()
    return WebhookIngress(behind, uc), behind, writer, m


def sig_headers(signature: str, body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"prizeflow-signature", signature.encode()),
            (b"content-length", str(len(body)).encode())]  # fmt: skip


async def test_an_accepted_webhook_is_answered_200_with_its_outcome() -> None:
    app, behind, writer, _ = app_with()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    status, _, answer, _ = await call(
        app, "/providers/sandbox/events", [body[:10], body[10:]], sig_headers(signature, body)
    )
    assert status == 200
    assert answer["outcome"] == "accepted"
    assert answer["provider_event_id"] == "sbx-evt-1"
    assert len(writer.outbox) == 1
    assert behind.paths == []


async def test_a_refusal_is_problem_details() -> None:
    app, _, writer, m = app_with()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    status, headers, problem, _ = await call(
        app, "/providers/sandbox/events", [body + b" "], sig_headers(signature, body)
    )
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert problem["code"] == "signature_mismatch"
    assert problem["status"] == 400
    assert problem["instance"] == "/providers/sandbox/events"
    assert problem["type"].endswith("/signature_mismatch")
    assert writer.deliveries == {}
    assert metric(m, "refused", provider="sandbox", reason="signature_mismatch") == 1


async def test_an_unknown_provider_is_404_before_the_body_is_read() -> None:
    app, _, _, m = app_with()
    status, _, problem, read = await call(app, "/providers/nobody/events", [b"{}"])
    assert (status, problem["code"], read) == (404, "unknown_provider", 0)
    assert metric(m, "refused", provider="unknown", reason="unknown_provider") == 1


@pytest.mark.parametrize(
    "media",
    [[], [b"text/plain"], [b"application/xml"], [b"application/json", b"application/json"], [b"application/json-seq"]],
)
async def test_a_body_that_is_not_json_by_its_own_declaration_is_415_before_it_is_read(media: list[bytes]) -> None:
    app, _, writer, m = app_with()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    headers = [(b"prizeflow-signature", signature.encode()), *((b"content-type", v) for v in media)]
    status, out, problem, read = await call(app, "/providers/sandbox/events", [body], headers)
    assert (status, problem["code"], read) == (415, "unsupported_media_type", 0)
    assert out["content-type"] == "application/problem+json"
    assert writer.deliveries == {}
    assert writer.outbox == []
    assert metric(m, "refused", provider="sandbox", reason="unsupported_media_type") == 1
    # The same genuine delivery as JSON (any case, with a charset) is then accepted: nothing was taken.
    again = [(b"prizeflow-signature", signature.encode()), (b"content-type", b"Application/JSON; charset=UTF-8")]
    status, _, answer, _ = await call(app, "/providers/sandbox/events", [body], again)
    assert (status, answer["outcome"]) == (200, "accepted")


async def test_a_declared_oversize_body_is_refused_before_it_is_read() -> None:
    app, _, _, m = app_with()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"65537")]
    status, _, problem, read = await call(app, "/providers/sandbox/events", [b"x" * 65537], headers)
    assert (status, problem["code"], read) == (413, "body_too_large", 0)
    assert metric(m, "refused", provider="sandbox", reason="body_too_large") == 1


async def test_a_streamed_body_is_read_only_up_to_the_limit() -> None:
    app, _, writer, m = app_with()
    chunks = [b"x" * 30_000] * 10  # no Content-Length (chunked): 300 KB offered, the limit is 64 KiB
    status, _, problem, read = await call(
        app, "/providers/sandbox/events", chunks, [(b"content-type", b"application/json")]
    )
    assert (status, problem["code"]) == (413, "body_too_large")
    assert read == 3
    assert writer.deliveries == {}
    assert metric(m, "refused", provider="sandbox", reason="body_too_large") == 1


async def test_other_methods_and_paths() -> None:
    app, behind, _, _ = app_with()
    status, headers, problem, _ = await call(app, "/providers/sandbox/events", [], method="GET")
    assert (status, headers["allow"], problem["code"]) == (405, "POST", "method_not_allowed")
    await call(app, "/providers/a/b/events", [b"{}"])
    await call(app, "/health/ready", [], method="GET")
    assert behind.paths == ["/providers/a/b/events", "/health/ready"]


async def test_the_answer_waits_for_the_commit_and_an_outage_is_a_503() -> None:
    class GatedWriter(FakeWriter):
        def __init__(self) -> None:
            super().__init__()
            self.gate = asyncio.Event()

        async def write(self, delivery: NewDelivery, event: StagedEvent | None) -> bool:
            await self.gate.wait()
            return await super().write(delivery, event)

    writer = GatedWriter()
    app, _, _, _ = app_with(writer)
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    answered = asyncio.create_task(call(app, "/providers/sandbox/events", [body], sig_headers(signature, body)))
    await asyncio.sleep(0)  # let the request run up to the write
    for _ in range(5):
        await asyncio.sleep(0)
    assert not answered.done()  # no answer while the commit is pending
    writer.gate.set()
    status, _, answer, _ = await answered
    assert status == 200
    assert answer["outcome"] == "accepted"

    down, _, _, _ = app_with(FakeWriter(fail_with=ConnectionRefusedError("db down")))
    status, headers, problem, _ = await call(down, "/providers/sandbox/events", [body], sig_headers(signature, body))
    assert (status, problem["code"], headers["retry-after"]) == (503, "service_unavailable", "5")


@pytest.mark.parametrize("detail_leak", ["secret-in-db-error"])
async def test_an_unexpected_error_is_a_500_without_its_text(detail_leak: str) -> None:
    app, _, _, _ = app_with(FakeWriter(fail_with=RuntimeError(detail_leak)))
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    status, _, problem, _ = await call(app, "/providers/sandbox/events", [body], sig_headers(signature, body))
    assert status == 500
    assert problem["code"] == "internal_error"
    assert detail_leak not in json.dumps(problem)


@pytest.mark.parametrize("valid_first", [True, False])
async def test_a_signature_header_sent_twice_is_refused_whichever_comes_first(valid_first: bool) -> None:
    """Two signature headers are ambiguous (a proxy may read the first, the ingress the last): refused whichever
    order, stored nothing, so a valid one cannot ride behind a junk one a front proxy checked or logged."""
    app, _, writer, m = app_with()
    signature, body = signed(SANDBOX_SECRET, sandbox_payout())
    junk = b"t=1,v1=" + b"0" * 64
    pair = [signature.encode(), junk] if valid_first else [junk, signature.encode()]
    headers = [(b"prizeflow-signature", v) for v in pair] + [(b"content-length", str(len(body)).encode())]
    status, _, problem, _ = await call(app, "/providers/sandbox/events", [body], headers)
    assert status == 400
    assert problem["code"] == "signature_malformed"
    assert writer.deliveries == {}
    assert writer.outbox == []
    assert metric(m, "refused", provider="sandbox", reason="signature_malformed") == 1
