"""The emulator's HTTP API in process (aiohttp's test server): app-token signing, the applicant flow through the
hosted page, review answers, webhooks with their digest, and faults."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from prizeflow_kyc_emulator.server import Emulator, create_app
from prizeflow_kyc_emulator.settings import EmulatorSettings
from prizeflow_testkit.stripe import WebhookReceiver

pytestmark = pytest.mark.integration

TOKEN, SECRET, HOOK_SECRET = "sbx:token", "secret-key", "webhook-secret-key-0123456789"
CREATE = "/resources/applicants?levelName=basic-kyc-level"


@pytest.fixture
async def hook() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver("/providers/sumsub/events") as receiver:
        yield receiver


@pytest.fixture
async def client(hook: WebhookReceiver) -> AsyncIterator[TestClient[Any, Any]]:
    settings = EmulatorSettings.from_env(
        {
            "KYC_EMULATOR_APP_TOKEN": TOKEN,
            "KYC_EMULATOR_SECRET_KEY": SECRET,
            "KYC_EMULATOR_AUTO_REVIEW": "green",
            "KYC_EMULATOR_REVIEW_DELAY_MS": "0",
            "KYC_EMULATOR_WEBHOOK_URL": hook.url,
            "KYC_EMULATOR_WEBHOOK_SECRET": HOOK_SECRET,
            "KYC_EMULATOR_WEBHOOK_RETRY_BASE_MS": "20",
        }
    )
    async with TestClient(TestServer(create_app(Emulator(settings)))) as c:
        yield c


def signed(method: str, path: str, body: bytes = b"", *, secret: str = SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    sig = hmac.new(secret.encode(), stamp.encode() + method.encode() + path.encode() + body, hashlib.sha256)
    return {
        "X-App-Token": TOKEN,
        "X-App-Access-Ts": stamp,
        "X-App-Access-Sig": sig.hexdigest(),
        "Content-Type": "application/json",
    }


async def call(c: TestClient[Any, Any], method: str, path: str, doc: Any = None) -> Any:
    body = b"" if doc is None else json.dumps(doc).encode()
    resp = await c.request(method, path, data=body, headers=signed(method, path, body))
    return resp.status, await resp.json()


async def test_every_api_call_is_signed(client: TestClient[Any, Any]) -> None:
    path = "/resources/applicants?levelName=basic-kyc-level"
    body = b'{"externalUserId":"p-1"}'
    for headers in (
        {},
        signed("POST", path, body, secret="wrong"),
        signed("POST", path, b'{"externalUserId":"p-2"}'),  # signed another body
        signed("POST", path, body, ts=int(time.time()) - 3600),  # stale
    ):
        resp = await client.post(path, data=body, headers=headers)
        assert resp.status == 401
        assert set(await resp.json()) >= {"description", "code"}
    resp = await client.post(path, data=body, headers=signed("POST", path, body))
    assert resp.status == 200


async def test_applicant_flow_through_the_hosted_page_and_webhooks(
    client: TestClient[Any, Any], hook: WebhookReceiver
) -> None:
    status, created = await call(
        client, "POST", "/resources/applicants?levelName=basic-kyc-level", {"externalUserId": "p-7"}
    )
    assert status == 200
    assert created["externalUserId"] == "p-7"
    assert created["review"]["reviewStatus"] == "init"
    status, conflict = await call(
        client, "POST", "/resources/applicants?levelName=basic-kyc-level", {"externalUserId": "p-7"}
    )
    assert status == 409
    assert created["id"] in conflict["description"]
    status, found = await call(client, "GET", "/resources/applicants/-;externalUserId=p-7/one")
    assert status == 200
    assert found["id"] == created["id"]

    status, link = await call(
        client,
        "POST",
        "/resources/sdkIntegrations/levels/-/websdkLink",
        {"levelName": "basic-kyc-level", "userId": "p-7", "ttlInSecs": 600},
    )
    assert status == 200
    assert "/websdk/p/" in link["url"]
    page_path = link["url"].split("127.0.0.1", 1)[1].split("/", 1)[1]
    page = await client.get("/" + page_path)
    assert page.status == 200
    assert "<form" in await page.text()
    bad = await client.post("/" + page_path, data={"firstName": "Ann", "lastName": "Lee", "dob": "x", "country": "DEU"})
    assert bad.status == 400
    form = {"firstName": "Ann", "lastName": "Lee", "dob": "1990-01-02", "country": "DEU", "number": "X1"}
    submitted = await client.post("/" + page_path, data=form)
    assert submitted.status == 200

    deliveries = await hook.wait_for(3)
    kinds = [json.loads(d.body)["type"] for d in deliveries]
    assert kinds[:3] == ["applicantCreated", "applicantPending", "applicantReviewed"]
    for d in deliveries:
        headers = {k.lower(): v for k, v in d.headers.items()}
        assert headers["x-payload-digest-alg"] == "HMAC_SHA256_HEX"
        want = hmac.new(HOOK_SECRET.encode(), d.body.encode(), hashlib.sha256).hexdigest()
        assert headers["x-payload-digest"] == want
        assert "Ann" not in d.body
        assert "1990" not in d.body
    reviewed = json.loads(deliveries[2].body)
    assert reviewed["reviewResult"] == {"reviewAnswer": "GREEN"}
    assert reviewed["externalUserId"] == "p-7"

    status, one = await call(client, "GET", f"/resources/applicants/{created['id']}/one")
    assert one["info"]["country"] == "DEU"
    assert one["info"]["dob"] == "1990-01-02"
    assert one["review"]["reviewStatus"] == "completed"
    status, review = await call(client, "GET", f"/resources/applicants/{created['id']}/status")
    assert review["reviewResult"]["reviewAnswer"] == "GREEN"


async def test_test_controls_review_faults_and_delivery_off(
    client: TestClient[Any, Any], hook: WebhookReceiver
) -> None:
    _, created = await call(
        client, "POST", "/resources/applicants?levelName=basic-kyc-level", {"externalUserId": "p-8"}
    )
    aid = created["id"]
    off = await client.post("/_emulator/webhooks", json={"enabled": False})
    assert (await off.json())["enabled"] is False
    await client.post("/_emulator/auto_review", json={"outcome": "none"})
    ident = {"firstName": "Bo", "lastName": "Ng", "dob": "1985-05-05", "country": "FRA"}
    assert (await client.post(f"/_emulator/applicants/{aid}/identity", json=ident)).status == 200
    red = await client.post(f"/_emulator/applicants/{aid}/review", json={"answer": "RED", "reject_type": "RETRY"})
    assert (await red.json())["review"]["reviewResult"]["reviewRejectType"] == "RETRY"
    before = len(hook.received)
    on = await client.post("/_emulator/webhooks", json={"enabled": True})
    assert (await on.json())["released"] >= 2
    await hook.wait_for(before + 2)

    await client.post("/_emulator/faults", json={"kind": "server_error", "count": 2})
    assert (await call(client, "GET", f"/resources/applicants/{aid}/status"))[0] == 500
    assert (await call(client, "GET", f"/resources/applicants/{aid}/status"))[0] == 500
    assert (await call(client, "GET", f"/resources/applicants/{aid}/status"))[0] == 200
    await client.post("/_emulator/faults", json={"kind": "rate_limit"})
    assert (await call(client, "GET", f"/resources/applicants/{aid}/one"))[0] == 429
    assert (await call(client, "GET", "/resources/applicants/nope/one"))[0] == 404
