"""The ingress as a process on real PostgreSQL and Kafka: accepted → stored and published once; duplicates and
refusals change nothing; secrets rotate; the answer waits for the commit."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest

from prizeflow_contracts.events.webhooks import PaymentEventReceived, ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import eventually, fetch
from prizeflow_testkit.webhooks import SANDBOX_SECRET_ENV, WebhooksProcess, sandbox_payout_event, sandbox_provider, sign

from .conftest import counts, published

pytestmark = pytest.mark.integration

PROVIDER_EVENT = ProviderEventReceived.event_type()
SIG = "prizeflow-signature"


async def metric(svc: WebhooksProcess, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{svc.base}/metrics")).text
    wanted = "prizeflow_webhooks_" + name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


async def drained(db_url: str) -> tuple[int, int]:
    """(deliveries, outbox) once the relay published everything staged."""
    return await eventually(lambda: counts(db_url), lambda c: c[1] == 0, timeout=30)


async def test_an_accepted_webhook_is_stored_and_published_once_and_a_duplicate_adds_nothing(
    webhooks: Callable[..., WebhooksProcess], db_url: str, kafka_bootstrap: str, topics: str
) -> None:
    svc = webhooks()
    svc.start()
    doc = sandbox_payout_event(
        "sbx-evt-1", provider_ref="sbx-1", idempotency_key="claim-1:payout:1", correlation_id="c-1"
    )
    status, answer = await svc.post("sandbox", doc)
    assert status == 200
    assert answer["outcome"] == "accepted"
    [row] = await fetch(db_url, "SELECT body, body_sha256, outcome, correlation_id, published_event_id FROM deliveries")
    assert bytes(row["body"]) == json.dumps(doc).encode()
    assert row["outcome"] == "published"
    assert str(row["published_event_id"]) == answer["event_id"]

    again = await svc.post("sandbox", {**doc, "status": "failed", "error_code": "tx_failed"})
    assert again == (200, {"outcome": "duplicate", "provider_event_id": "sbx-evt-1"})
    assert await drained(db_url) == (1, 0)
    [event] = await published(kafka_bootstrap, topics, PROVIDER_EVENT)
    assert str(event.id) == answer["event_id"]
    assert event.source == "/prizeflow/webhooks"
    assert event.correlationid == "c-1"
    assert isinstance(event.data, ProviderEventReceived)
    assert event.data.verified
    assert event.data.status is ProviderPayoutStatus.PAID
    assert event.data.payload_digest == row["body_sha256"]
    assert await metric(svc, "deliveries_total", provider="sandbox", outcome="accepted") == 1
    assert await metric(svc, "deliveries_total", provider="sandbox", outcome="duplicate") == 1

    payment = {"event_id": "sbx-evt-2", "kind": "checkout.completed", "subject": "payment", "status": "paid",
               "top_up_id": "tu-1", "amount": {"asset": "USD", "amount": 1000}}  # fmt: skip
    assert (await svc.post("sandbox", payment))[0] == 200
    ignored = await svc.post("sandbox", {"event_id": "sbx-evt-3", "kind": "ping"})
    assert ignored[1]["outcome"] == "ignored"
    assert await drained(db_url) == (3, 0)
    events = await published(kafka_bootstrap, topics)
    assert [type(e.data) for e in events].count(PaymentEventReceived) == 1
    assert len(events) == 2  # the ignored delivery published nothing


async def _raw_post(svc: WebhooksProcess, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """JSON unless `headers` says otherwise (a `content-type` of "" sends none at all)."""
    sent = {"content-type": "application/json", **headers}
    if not sent["content-type"]:
        del sent["content-type"]
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{svc.base}{path}", content=body, headers=sent)


def _cases(secret: str) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    body = json.dumps(sandbox_payout_event("sbx-bad", provider_ref="r-1")).encode()
    now = time.time()
    good = sign(secret, body)
    # A correlation id with a newline after it passed a `re.match` and was refused by the envelope afterwards: a 500.
    newline_id = json.dumps(sandbox_payout_event("sbx-bad", provider_ref="r-1", correlation_id="c-1\n")).encode()
    return [
        ("sandbox", "signature_missing", body, {}, 400, "sandbox"),
        ("sandbox", "signature_malformed", body, {"prizeflow-signature": "t=abc"}, 400, "sandbox"),
        ("sandbox", "signature_mismatch", body + b" ", {"prizeflow-signature": good}, 400, "sandbox"),
        ("sandbox", "signature_mismatch", body, {SIG: sign("x" * 32, body)}, 400, "sandbox"),
        ("sandbox", "timestamp_stale", body, {SIG: sign(secret, body, at=now - 400)}, 400, "sandbox"),
        ("sandbox", "timestamp_future", body, {SIG: sign(secret, body, at=now + 400)}, 400, "sandbox"),
        ("sandbox", "malformed_json", b"{nope", {"prizeflow-signature": sign(secret, b"{nope")}, 400, "sandbox"),
        ("sandbox", "invalid_payload", b'{"event_id": "e"}', {SIG: sign(secret, b'{"event_id": "e"}')},
         422, "sandbox"),
        ("sandbox", "invalid_payload", newline_id, {SIG: sign(secret, newline_id)}, 422, "sandbox"),
        ("nobody", "unknown_provider", body, {"prizeflow-signature": good}, 404, "unknown"),
        ("%3D1%2B2", "unknown_provider", body, {"prizeflow-signature": good}, 404, "unknown"),
        # Genuinely signed, but not JSON by its own declaration: no provider of ours sends that.
        ("sandbox", "unsupported_media_type", body, {SIG: good, "content-type": "text/plain"}, 415, "sandbox"),
        ("sandbox", "unsupported_media_type", body, {SIG: good, "content-type": "application/xml"}, 415, "sandbox"),
        ("sandbox", "unsupported_media_type", body, {SIG: good, "content-type": ""}, 415, "sandbox"),
        ("sandbox", "unsupported_media_type", body, {SIG: good, "content-type": "application/jsonp"}, 415, "sandbox"),
    ]  # fmt: skip


async def test_every_refusal_is_a_problem_stores_and_publishes_nothing_and_is_counted(
    webhooks: Callable[..., WebhooksProcess], db_url: str, kafka_bootstrap: str, topics: str
) -> None:
    svc = webhooks()
    svc.start()
    for provider, reason, body, headers, status, label in _cases(svc.secrets[SANDBOX_SECRET_ENV]):
        response = await _raw_post(svc, f"/providers/{provider}/events", body, headers)
        assert response.status_code == status, (reason, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == reason
        assert await metric(svc, "refused_total", provider=label, reason=reason) >= 1
    assert await counts(db_url) == (0, 0)
    assert await published(kafka_bootstrap, topics) == []
    assert "sbx-bad" not in svc.log.read_text()  # a refused request is never logged with its body
    # The refusals took no dedup key: the same genuine delivery, as JSON, is accepted afterwards.
    body = json.dumps(sandbox_payout_event("sbx-bad", provider_ref="r-1")).encode()
    secret = svc.secrets[SANDBOX_SECRET_ENV]
    genuine = await _raw_post(
        svc,
        "/providers/sandbox/events",
        body,
        {SIG: sign(secret, body), "content-type": "Application/JSON; charset=utf-8"},
    )
    assert (genuine.status_code, genuine.json()["outcome"]) == (200, "accepted")


async def test_an_oversize_body_is_refused_declared_or_streamed(
    webhooks: Callable[..., WebhooksProcess], db_url: str
) -> None:
    svc = webhooks(providers=[{**sandbox_provider(), "max_body_bytes": 2048}])
    svc.start()
    secret = svc.secrets[SANDBOX_SECRET_ENV]
    big = json.dumps(sandbox_payout_event("sbx-big", provider_ref="r", note="x" * 4000)).encode()
    declared = await _raw_post(svc, "/providers/sandbox/events", big, {"prizeflow-signature": sign(secret, big)})
    assert declared.status_code == 413
    assert declared.json()["code"] == "body_too_large"

    async def chunks() -> Any:
        for i in range(0, len(big), 512):
            yield big[i : i + 512]

    async with httpx.AsyncClient(timeout=10) as http:  # chunked: no Content-Length to refuse up front
        streamed = await http.post(
            svc.url("sandbox"),
            content=chunks(),
            headers={"prizeflow-signature": sign(secret, big), "content-type": "application/json"},
        )
    assert streamed.status_code == 413
    assert await metric(svc, "refused_total", provider="sandbox", reason="body_too_large") == 2
    assert await counts(db_url) == (0, 0)


async def test_secrets_rotate_old_and_new_accepted_while_both_are_configured_then_the_old_one_is_refused(
    webhooks: Callable[..., WebhooksProcess], db_url: str
) -> None:
    old, new = "old-secret-" + "a" * 24, "new-secret-" + "b" * 24
    both = webhooks(
        providers=[sandbox_provider(secret_envs=["WH_OLD", "WH_NEW"])], secrets_env={"WH_OLD": old, "WH_NEW": new}
    )
    both.start()
    assert (await both.post("sandbox", sandbox_payout_event("e-old", provider_ref="r"), secret_env="WH_OLD"))[0] == 200
    assert (await both.post("sandbox", sandbox_payout_event("e-new", provider_ref="r"), secret_env="WH_NEW"))[0] == 200
    both.stop()
    rotated = webhooks(providers=[sandbox_provider(secret_envs=["WH_NEW"])], secrets_env={"WH_OLD": old, "WH_NEW": new})
    rotated.start()
    status, problem = await rotated.post(
        "sandbox", sandbox_payout_event("e-late", provider_ref="r"), secret_env="WH_OLD"
    )
    assert (status, problem["code"]) == (400, "signature_mismatch")
    assert (await rotated.post("sandbox", sandbox_payout_event("e-new2", provider_ref="r"), secret_env="WH_NEW"))[
        0
    ] == 200
    stored = {r["provider_event_id"] for r in await fetch(db_url, "SELECT provider_event_id FROM deliveries")}
    assert stored == {"e-old", "e-new", "e-new2"}


async def test_the_answer_is_sent_only_after_the_commit(webhooks: Callable[..., WebhooksProcess], db_url: str) -> None:
    svc = webhooks()
    svc.start()
    blocker = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")  # inserts wait; reads do not
        answer = asyncio.create_task(svc.post("sandbox", sandbox_payout_event("e-wait", provider_ref="r")))
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'deliveries'::regclass AND NOT granted"
        await eventually(lambda: blocker.fetchval(waiting), lambda n: n >= 1, timeout=30)
        assert not answer.done()  # the insert waits for the lock, and the answer for the commit
        await tx.rollback()
    finally:
        await blocker.close()
    status, body = await answer
    assert (status, body["outcome"]) == (200, "accepted")
    assert (await counts(db_url))[0] == 1


async def test_a_burst_of_concurrent_deliveries_with_duplicates_is_stored_and_published_exactly_once(
    webhooks: Callable[..., WebhooksProcess], db_url: str, kafka_bootstrap: str, topics: str
) -> None:
    svc = webhooks()
    svc.start()
    docs = [
        sandbox_payout_event(f"e-{i % 150}", provider_ref=f"r-{i % 150}", correlation_id=f"c-{i % 150}")
        for i in range(300)
    ]
    answers = await asyncio.gather(*(svc.post("sandbox", d) for d in docs))
    outcomes = [a[1]["outcome"] for a in answers]
    assert all(a[0] == 200 for a in answers)
    assert outcomes.count("accepted") == 150
    assert outcomes.count("duplicate") == 150
    assert await drained(db_url) == (150, 0)
    events = await published(kafka_bootstrap, topics, PROVIDER_EVENT)
    assert sorted(e.data.provider_event_id for e in events) == sorted(f"e-{i}" for i in range(150))
