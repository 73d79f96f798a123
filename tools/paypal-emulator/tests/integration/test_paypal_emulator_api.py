"""The emulator over HTTP, in this process (aiohttp's test server on a free port, httpx as the client): OAuth2 and
bearer tokens, the Payouts API and its errors in PayPal's shape, items moved by the admin clock, webhooks received
and their signatures checked independently (the certificate fetched from PAYPAL-CERT-URL), the verify call, faults,
Transaction Search and discrepancies; and `python -m prizeflow_paypal_emulator` as a process."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from prizeflow_paypal_emulator.money import iso
from prizeflow_paypal_emulator.server import Emulator, create_app
from prizeflow_paypal_emulator.settings import EmulatorSettings
from prizeflow_paypal_emulator.signing import generate, private_pem
from prizeflow_testkit.processes import Process, free_port

pytestmark = pytest.mark.integration  # listens on loopback

KEY = generate()
CLIENT_ID, SECRET = "AeEmulatorClient01", "emulator-secret-for-tests"
WEBHOOK_ID = "8PT597110X687430LE"
HOUR = 3600


@dataclass
class Receiver:
    """A webhook endpoint: records each delivery's headers and raw body, answers the scripted statuses, then 200."""

    statuses: list[int] = field(default_factory=list)
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def wait_for(self, n: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        async with asyncio.timeout(timeout):
            while len(self.got) < n:
                await asyncio.sleep(0.01)
        return self.got

    def types(self) -> list[str]:
        return [json.loads(body)["event_type"] for _, body in self.got]


@dataclass
class PayPal:
    emulator: Emulator
    api: httpx.AsyncClient
    admin: httpx.AsyncClient

    async def token(self) -> str:
        resp = await self.api.post(
            "/v1/oauth2/token", auth=(CLIENT_ID, SECRET), data={"grant_type": "client_credentials"}
        )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    async def authorized(self) -> None:
        self.api.headers["Authorization"] = f"Bearer {await self.token()}"

    async def advance(self, seconds: float) -> None:
        assert (await self.admin.post("/clock/advance", json={"seconds": seconds})).status_code == 200


@pytest.fixture
async def paypal() -> AsyncIterator[PayPal]:
    port = free_port()
    settings = EmulatorSettings(
        clients={CLIENT_ID: SECRET},
        signing=KEY,
        port=port,
        balances={"USD": Decimal("500.00")},
        item_fees={"USD": Decimal("0.25")},
        process_ms=HOUR * 1000,  # nothing is processed by itself: the tests move the clock
        webhook_retry_base_ms=20,
    )
    emulator = Emulator(settings)
    server = TestServer(create_app(emulator), host="127.0.0.1", port=port)
    await server.start_server()
    base = f"http://127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=5) as api,
        httpx.AsyncClient(base_url=base + "/_emulator", timeout=5) as admin,
    ):
        yield PayPal(emulator, api, admin)
    await server.close()


@pytest.fixture
async def receiver(paypal: PayPal) -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/providers/paypal/events", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rec.url = str(server.make_url("/providers/paypal/events"))
    resp = await paypal.admin.post("/webhooks", json={"url": rec.url, "webhook_id": WEBHOOK_ID})
    assert resp.status_code == 200, resp.text
    try:
        yield rec
    finally:
        await server.close()


def batch(sender_batch_id: str, *receivers: str, value: str = "12.34") -> dict[str, Any]:
    return {
        "sender_batch_header": {"sender_batch_id": sender_batch_id, "email_subject": "You have a prize"},
        "items": [
            {
                "recipient_type": "EMAIL",
                "amount": {"value": value, "currency": "USD"},
                "receiver": r,
                "sender_item_id": f"{sender_batch_id}-{n}",
            }
            for n, r in enumerate(receivers or ("ann@example.com",))
        ],
    }


async def verified_independently(api: httpx.AsyncClient, headers: dict[str, str], body: bytes) -> bool:
    """What a receiver does: the certificate fetched from PAYPAL-CERT-URL, the signed string rebuilt from the headers,
    our webhook id and the raw body's CRC32, the signature checked with the certificate's public key."""
    assert headers["PAYPAL-AUTH-ALGO"] == "SHA256withRSA"
    cert = x509.load_pem_x509_certificate((await api.get(headers["PAYPAL-CERT-URL"])).content)
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    crc = zlib.crc32(body) & 0xFFFFFFFF
    signed = f"{headers['PAYPAL-TRANSMISSION-ID']}|{headers['PAYPAL-TRANSMISSION-TIME']}|{WEBHOOK_ID}|{crc}".encode()
    try:
        public.verify(base64.b64decode(headers["PAYPAL-TRANSMISSION-SIG"]), signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


async def test_oauth_tokens_guard_every_api_route_and_expire_on_the_clock(paypal: PayPal) -> None:
    api = paypal.api
    wrong = await api.post("/v1/oauth2/token", auth=(CLIENT_ID, "nope"), data={"grant_type": "client_credentials"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    no_grant = await api.post("/v1/oauth2/token", auth=(CLIENT_ID, SECRET), data={})
    assert (no_grant.status_code, no_grant.json()["error"]) == (400, "unsupported_grant_type")
    issued = (
        await api.post("/v1/oauth2/token", auth=(CLIENT_ID, SECRET), data={"grant_type": "client_credentials"})
    ).json()
    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 32_400)
    assert issued["app_id"].startswith("APP-")
    anonymous = await api.get("/v1/payments/payouts/NOSUCHBATCH00")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_token")
    bearer = {"Authorization": f"Bearer {issued['access_token']}"}
    missing = await api.get("/v1/payments/payouts/NOSUCHBATCH00", headers=bearer)
    assert (missing.status_code, missing.json()["name"]) == (404, "INVALID_RESOURCE_ID")
    assert {"debug_id", "information_link", "message"} <= set(missing.json())
    await paypal.advance(32_400)
    expired = await api.get("/v1/payments/payouts/NOSUCHBATCH00", headers=bearer)
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_token")
    logged = (await paypal.admin.get("/requests", params={"path": "/v1/oauth2/token"})).json()["requests"]
    assert [r["status"] for r in logged] == [401, 400, 200]


async def test_a_batch_is_paid_on_the_clock_with_signed_webhooks_a_receiver_can_verify(
    paypal: PayPal, receiver: Receiver
) -> None:
    await paypal.authorized()
    api = paypal.api
    headers = {"PayPal-Request-Id": "pf-batch-1"}
    created = await api.post("/v1/payments/payouts", json=batch("pf-1", "ann@example.com"), headers=headers)
    assert created.status_code == 201, created.text
    header = created.json()["batch_header"]
    assert header["batch_status"] == "PENDING"
    replay = await api.post("/v1/payments/payouts", json=batch("pf-1", "ann@example.com"), headers=headers)
    assert (replay.status_code, replay.json()["batch_header"]["payout_batch_id"]) == (201, header["payout_batch_id"])
    reused = await api.post("/v1/payments/payouts", json=batch("pf-1", "bob@example.com"))
    assert (reused.status_code, reused.json()["name"]) == (400, "USER_BUSINESS_ERROR")
    assert reused.json()["details"][0]["issue"] == "Batch with given sender_batch_id already exists"
    await paypal.advance(HOUR)
    got = await receiver.wait_for(3)
    assert receiver.types() == [
        "PAYMENT.PAYOUTSBATCH.PROCESSING",
        "PAYMENT.PAYOUTS-ITEM.SUCCEEDED",
        "PAYMENT.PAYOUTSBATCH.SUCCESS",
    ]
    for delivery_headers, body in got:
        assert await verified_independently(api, delivery_headers, body)
    shown = (await api.get(f"/v1/payments/payouts/{header['payout_batch_id']}")).json()
    assert shown["batch_header"]["batch_status"] == "SUCCESS"
    assert shown["batch_header"]["fees"] == {"currency": "USD", "value": "0.25"}
    (item,) = shown["items"]
    assert (item["transaction_status"], item["payout_item"]["sender_item_id"]) == ("SUCCESS", "pf-1-0")
    detail = (await api.get(f"/v1/payments/payouts-item/{item['payout_item_id']}")).json()
    event = json.loads(got[1][1])
    assert (event["resource_type"], event["resource"]) == ("payouts_item", detail)
    # PayPal's verify call: SUCCESS for the delivery as received, FAILURE for a changed event or another webhook id
    delivery_headers, body = got[1]
    check = {
        "auth_algo": delivery_headers["PAYPAL-AUTH-ALGO"],
        "cert_url": delivery_headers["PAYPAL-CERT-URL"],
        "transmission_id": delivery_headers["PAYPAL-TRANSMISSION-ID"],
        "transmission_sig": delivery_headers["PAYPAL-TRANSMISSION-SIG"],
        "transmission_time": delivery_headers["PAYPAL-TRANSMISSION-TIME"],
        "webhook_id": WEBHOOK_ID,
        "webhook_event": json.loads(body),
    }
    verify = "/v1/notifications/verify-webhook-signature"
    assert (await api.post(verify, json=check)).json() == {"verification_status": "SUCCESS"}
    changed = {**check, "webhook_event": {**json.loads(body), "summary": "changed"}}
    assert (await api.post(verify, json=changed)).json() == {"verification_status": "FAILURE"}
    assert (await api.post(verify, json={**check, "webhook_id": "OTHER"})).json()["verification_status"] == "FAILURE"
    incomplete = await api.post(verify, json={"auth_algo": "SHA256withRSA"})
    assert (incomplete.status_code, incomplete.json()["name"]) == (400, "VALIDATION_ERROR")
    assert (await paypal.admin.get("/stats")).json()["batches_created"] == 1


async def test_unclaimed_items_are_cancelled_and_transaction_search_lists_the_money(
    paypal: PayPal, receiver: Receiver
) -> None:
    await paypal.authorized()
    api = paypal.api
    created = await api.post("/v1/payments/payouts", json=batch("pf-2", "ann.unclaimed@example.com", "bob@example.com"))
    batch_id = created.json()["batch_header"]["payout_batch_id"]
    await paypal.advance(HOUR)
    unclaimed, paid = (await api.get(f"/v1/payments/payouts/{batch_id}")).json()["items"]
    assert (unclaimed["transaction_status"], unclaimed["errors"]["name"]) == ("UNCLAIMED", "RECEIVER_UNREGISTERED")
    refused = await api.post(f"/v1/payments/payouts-item/{paid['payout_item_id']}/cancel")
    assert (refused.status_code, refused.json()["name"]) == (400, "ITEM_INCORRECT_STATUS")
    cancelled = await api.post(f"/v1/payments/payouts-item/{unclaimed['payout_item_id']}/cancel")
    assert (cancelled.status_code, cancelled.json()["transaction_status"]) == (200, "RETURNED")
    await receiver.wait_for(5)
    assert "PAYMENT.PAYOUTS-ITEM.CANCELED" in receiver.types()
    refunded = await paypal.admin.post(f"/items/{paid['payout_item_id']}/refund")
    assert refunded.json()["transaction_status"] == "REFUNDED"
    fee = await paypal.admin.post(
        "/discrepancies", json={"kind": "fee", "reference": paid["payout_item_id"], "amount": 5}
    )
    assert fee.status_code == 201
    window = {"start_date": "2020-01-01T00:00:00Z", "end_date": "2020-01-31T23:59:59Z"}
    too_long = await api.get("/v1/reporting/transactions", params={**window, "end_date": "2020-03-01T00:00:00Z"})
    assert (too_long.status_code, too_long.json()["details"][0]["issue"]) == (400, "Date range is greater than 31 days")
    now = (await paypal.admin.get("/clock")).json()["now"]
    listed = await api.get(
        "/v1/reporting/transactions",
        params={"start_date": iso(now - 10 * 86_400), "end_date": iso(now + 60), "fields": "all", "page_size": "100"},
    )
    assert listed.status_code == 200, listed.text
    infos = [d["transaction_info"] for d in listed.json()["transaction_details"]]
    assert [i["transaction_event_code"] for i in infos] == [
        "T0001",
        "T0104",
        "T0001",
        "T0104",
        "T1114",
        "T1108",
        "T1115",
    ]
    assert (
        next(i for i in infos if i["transaction_id"] == fee.json()["line_id"])["transaction_amount"]["value"] == "-0.30"
    )
    balance = (await paypal.admin.get("/balance")).json()["balances"]["USD"]
    assert Decimal(balance) == Decimal("500.00") + sum(Decimal(i["transaction_amount"]["value"]) for i in infos)


async def test_faults_answer_in_paypal_s_shape_and_a_timeout_after_success_still_pays(paypal: PayPal) -> None:
    await paypal.authorized()
    api, admin = paypal.api, paypal.admin
    await admin.post("/faults", json={"kind": "rate_limit", "method": "POST", "path_prefix": "/v1/payments/payouts"})
    limited = await api.post("/v1/payments/payouts", json=batch("pf-3"), headers={"PayPal-Request-Id": "r-3"})
    assert (limited.status_code, limited.json()["name"]) == (429, "RATE_LIMIT_REACHED")
    await admin.post("/faults", json={"kind": "server_error", "path_prefix": "/v1/payments/payouts"})
    failed = await api.post("/v1/payments/payouts", json=batch("pf-3"), headers={"PayPal-Request-Id": "r-3"})
    assert (failed.status_code, failed.json()["name"]) == (500, "INTERNAL_SERVICE_ERROR")
    await admin.post("/faults", json={"kind": "timeout_after_success", "path_prefix": "/v1/payments", "delay_ms": 2000})
    with pytest.raises(httpx.ReadTimeout):
        await api.post("/v1/payments/payouts", json=batch("pf-3"), headers={"PayPal-Request-Id": "r-3"}, timeout=0.3)
    again = await api.post("/v1/payments/payouts", json=batch("pf-3"), headers={"PayPal-Request-Id": "r-3"})
    assert again.status_code == 201  # the same request id: the batch made behind the timeout
    batches = (await admin.get("/batches", params={"sender_batch_id": "pf-3"})).json()["batches"]
    assert len(batches) == 1
    logged = (await admin.get("/requests", params={"method": "POST", "path": "/v1/payments/payouts"})).json()
    assert [(r["status"], r["fault"], r["request_id"]) for r in logged["requests"]] == [
        (429, "rate_limit", "r-3"),
        (500, "server_error", "r-3"),
        (201, "timeout_after_success", "r-3"),
        (201, None, "r-3"),
    ]
    assert {r["sender_batch_id"] for r in logged["requests"]} == {"pf-3"}
    assert (await admin.post("/reset")).json() == {"status": "reset"}
    assert (await admin.get("/batches")).json() == {"batches": []}


async def test_webhooks_are_retried_held_and_released_and_unknown_routes_are_404(
    paypal: PayPal, receiver: Receiver
) -> None:
    await paypal.authorized()
    receiver.statuses = [500]
    await paypal.admin.post("/webhooks", json={"hold": True})
    await paypal.api.post("/v1/payments/payouts", json=batch("pf-4", "ann.onhold@example.com"))
    await paypal.advance(HOUR)
    assert receiver.got == []
    assert (await paypal.admin.post("/webhooks/release", json={"order": "reverse"})).json() == {"released": 3}
    got = await receiver.wait_for(4)  # the first answered 500: sent again after the others
    assert receiver.types() == [
        "PAYMENT.PAYOUTSBATCH.SUCCESS",
        "PAYMENT.PAYOUTS-ITEM.HELD",
        "PAYMENT.PAYOUTSBATCH.PROCESSING",
        "PAYMENT.PAYOUTSBATCH.SUCCESS",
    ]
    ids = [json.loads(body)["id"] for _, body in got]
    assert ids[0] == ids[-1]
    transmissions = {h["PAYPAL-TRANSMISSION-ID"] for h, _ in got}
    assert len(transmissions) == 4  # a new transmission each attempt
    for headers, body in got:
        assert await verified_independently(paypal.api, headers, body)
    unknown = await paypal.api.get("/v1/payments/nothing-here")
    assert (unknown.status_code, unknown.json()["name"]) == (404, "RESOURCE_NOT_FOUND")
    cert = await paypal.api.get(f"/v1/notifications/certs/{KEY.cert_id}")  # public, no token needed
    assert cert.content == KEY.cert_pem


def test_the_process_refuses_a_bad_setting_and_serves_with_its_key_files(tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "prizeflow_paypal_emulator"],
        env={"PATH": "/usr/bin:/bin", "PRIZEFLOW_PROFILE": "dev"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert b"PAYPAL_EMULATOR_CLIENTS" in refused.stderr
    (tmp_path / "key.pem").write_bytes(private_pem(KEY))
    (tmp_path / "cert.pem").write_bytes(KEY.cert_pem)
    port = free_port()
    proc = Process(
        [sys.executable, "-m", "prizeflow_paypal_emulator"],
        {
            "PAYPAL_EMULATOR_PORT": str(port),
            "PAYPAL_EMULATOR_CLIENTS": f"{CLIENT_ID}:{SECRET}",
            "PAYPAL_EMULATOR_SIGNING_KEY_FILE": str(tmp_path / "key.pem"),
            "PAYPAL_EMULATOR_SIGNING_CERT_FILE": str(tmp_path / "cert.pem"),
            "PRIZEFLOW_PROFILE": "production",
        },
        tmp_path / "emulator.log",
        f"http://127.0.0.1:{port}/_emulator/health",
    )
    proc.start(timeout=30)
    try:
        cert = httpx.get(f"http://127.0.0.1:{port}/v1/notifications/certs/{KEY.cert_id}", timeout=5)
        assert cert.content == KEY.cert_pem
        token = httpx.post(
            f"http://127.0.0.1:{port}/v1/oauth2/token",
            auth=(CLIENT_ID, SECRET),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        assert token.status_code == 200
    finally:
        proc.stop(timeout=10)
