"""The emulator as a process (testkit harness): Basic auth, the API's JSON and errors, validations and payouts moved
by the clock, signed webhooks (duplicates, out of order), low balance, faults, the statement and discrepancies."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from prizeflow_testkit.stripe import ReceivedWebhook, WebhookReceiver
from prizeflow_testkit.upi import ACCOUNT_NUMBER, UpiAdmin, UpiAdminError, UpiEmulator, upi_emulator

pytestmark = pytest.mark.integration

SECRET = "upi-webhook-secret-for-tests"
HOUR = 3600


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpiEmulator]:
    env = {  # nothing settles by itself: the tests move the clock
        "UPI_EMULATOR_SETTLE_MS": "UPI:3600000,IMPS:3600000,NEFT:3600000",
        "UPI_EMULATOR_VALIDATION_MS": "3600000",
        "UPI_EMULATOR_BALANCE": "10000000",  # ₹1,00,000
    }
    with upi_emulator(tmp_path_factory.mktemp("upi") / "emulator.log", env=env) as em:
        yield em


@pytest.fixture
async def admin(emulator: UpiEmulator) -> AsyncIterator[UpiAdmin]:
    async with emulator.admin() as client:
        await client.reset()
        yield client


@pytest.fixture
async def api(emulator: UpiEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with emulator.api(timeout=5) as client:
        yield client


@pytest.fixture
async def hook(admin: UpiAdmin) -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver("/providers/razorpayx/events") as receiver:
        await admin.webhooks(url=receiver.url, secret=SECRET, retry_base_ms=20, max_attempts=3)
        yield receiver


async def fund_account(api: httpx.AsyncClient, address: str = "asha@okicici") -> str:
    contact = (await api.post("/contacts", json={"name": "Asha Rao", "type": "customer"})).json()
    body = {"contact_id": contact["id"], "account_type": "vpa", "vpa": {"address": address}}
    fa: str = (await api.post("/fund_accounts", json=body)).json()["id"]
    return fa


def payout(fa: str, amount: int = 50_000, **extra: Any) -> dict[str, Any]:
    return {
        "account_number": ACCOUNT_NUMBER,
        "fund_account_id": fa,
        "amount": amount,
        "currency": "INR",
        "mode": extra.pop("mode", "UPI"),
        "purpose": "payout",
        "reference_id": extra.pop("ref", "po_1"),
        **extra,
    }


async def create(
    api: httpx.AsyncClient, body: dict[str, Any], key: str = "key-0001", *, timeout: float = 5
) -> httpx.Response:
    return await api.post("/payouts", json=body, headers={"X-Payout-Idempotency": key}, timeout=timeout)


def event(delivery: ReceivedWebhook) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(delivery.body)
    return doc


def verified(delivery: ReceivedWebhook) -> bool:
    expected = hmac.new(SECRET.encode(), delivery.body.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(delivery.headers["X-Razorpay-Signature"], expected)


async def test_basic_auth_and_razorpay_error_shape(emulator: UpiEmulator, admin: UpiAdmin) -> None:
    async with httpx.AsyncClient(base_url=emulator.url + "/v1") as anonymous:
        missing = await anonymous.get("/payouts", params={"account_number": ACCOUNT_NUMBER})
        wrong = await anonymous.get("/payouts", auth=(emulator.key_id, "nope"))
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "BAD_REQUEST_ERROR"
    assert wrong.json()["error"]["description"] == "The api key provided is invalid"
    assert (await admin.requests(path="/v1/payouts"))[0]["status"] == 401


async def test_a_validation_completes_when_the_clock_says_with_a_signed_webhook(
    api: httpx.AsyncClient, admin: UpiAdmin, hook: WebhookReceiver
) -> None:
    fa = await fund_account(api)
    body = {"account_number": ACCOUNT_NUMBER, "fund_account": {"id": fa}, "notes": {"why": "first payout"}}
    created = (await api.post("/fund_accounts/validations", json=body)).json()
    assert (created["status"], created["results"]) == ("created", {"account_status": None, "registered_name": None})
    await admin.advance(HOUR)
    done = (await api.get(f"/fund_accounts/validations/{created['id']}")).json()
    assert (done["status"], done["results"]) == (
        "completed",
        {"account_status": "active", "registered_name": "Asha Rao"},
    )
    [delivery] = await hook.wait_for(1)
    assert verified(delivery)
    assert event(delivery)["event"] == "fund_account.validation.completed"
    assert event(delivery)["payload"]["fund_account.validation"]["entity"]["id"] == created["id"]


async def test_a_payout_moves_with_the_clock_and_each_state_is_a_signed_event(
    api: httpx.AsyncClient, admin: UpiAdmin, hook: WebhookReceiver
) -> None:
    fa = await fund_account(api)
    made = (await create(api, payout(fa))).json()
    assert made["status"] == "processing"
    assert (await api.get(f"/payouts/{made['id']}")).json()["status"] == "processing"
    await admin.advance(HOUR)
    got = await hook.wait_for(2)
    assert [event(d)["event"] for d in got] == ["payout.initiated", "payout.processed"]
    assert all(verified(d) for d in got)
    assert len({d.headers["X-Razorpay-Event-Id"] for d in got}) == 2
    processed = event(got[1])
    assert processed["entity"] == "event"
    assert processed["contains"] == ["payout"]
    entity = processed["payload"]["payout"]["entity"]
    assert (entity["id"], entity["status"], entity["fees"], entity["tax"]) == (made["id"], "processed", 590, 90)
    assert entity["fund_account"]["vpa"]["address"] == "asha@okicici"
    assert len(entity["utr"]) == 12
    tampered = ReceivedWebhook(got[1].headers, got[1].body.replace("processed", "reversed"))
    assert not verified(tampered)


async def test_duplicate_and_out_of_order_deliveries(
    api: httpx.AsyncClient, admin: UpiAdmin, hook: WebhookReceiver
) -> None:
    await admin.webhooks(duplicates=2, hold=True)
    fa = await fund_account(api)
    await create(api, payout(fa))
    await admin.advance(HOUR)
    assert await admin.release("reverse") == 4
    got = await hook.wait_for(4)
    assert [event(d)["event"] for d in got] == ["payout.processed"] * 2 + ["payout.initiated"] * 2
    assert got[0].headers["X-Razorpay-Event-Id"] == got[1].headers["X-Razorpay-Event-Id"]  # a duplicate
    [initiated] = await admin.events("payout.initiated")
    await admin.redeliver(initiated["id"])  # late, once more
    assert event((await hook.wait_for(5))[4])["event"] == "payout.initiated"


async def test_a_reversal_hours_after_processed(api: httpx.AsyncClient, admin: UpiAdmin, hook: WebhookReceiver) -> None:
    await admin.rules(
        [
            {
                "destination": "*@flaky",
                "payout": "reversed_after_processed",
                "after_s": 2 * HOUR,
                "reason": "bank_account_frozen",
            }
        ]
    )
    fa = await fund_account(api, "asha@flaky")
    made = (await create(api, payout(fa))).json()
    await admin.advance(HOUR)
    assert (await api.get(f"/payouts/{made['id']}")).json()["status"] == "processed"
    await admin.advance(2 * HOUR)
    back = (await api.get(f"/payouts/{made['id']}")).json()
    assert (back["status"], back["status_details"]["reason"]) == ("reversed", "bank_account_frozen")
    got = await hook.wait_for(3)
    assert [event(d)["event"] for d in got] == ["payout.initiated", "payout.processed", "payout.reversed"]
    statement = (await api.get("/transactions", params={"account_number": ACCOUNT_NUMBER})).json()["items"]
    assert statement[0]["source"]["entity"] == "reversal"
    assert statement[0]["credit"] == 50_590
    assert statement[0]["created_at"] - statement[1]["created_at"] == 3 * HOUR
    assert statement[0]["balance"] == 10_000_000


async def test_idempotency_over_http_and_a_timeout_after_success(api: httpx.AsyncClient, admin: UpiAdmin) -> None:
    fa = await fund_account(api)
    missing = await api.post("/payouts", json=payout(fa))
    assert (missing.status_code, missing.json()["error"]["field"]) == (400, "X-Payout-Idempotency")
    await admin.fault("timeout_after_success", method="POST", path_prefix="/v1/payouts", delay_ms=3000)
    with pytest.raises(httpx.ReadTimeout):
        await create(api, payout(fa), key="key-retry", timeout=0.5)
    again = await create(api, payout(fa), key="key-retry")  # the retry: the payout the first call made
    assert again.status_code == 200
    assert (await admin.stats())["payouts_created"] == 1
    other = await create(api, payout(fa, amount=60_000), key="key-retry")
    assert other.status_code == 400
    assert other.json()["error"]["description"] == "Different request body sent for the same Idempotency Header"
    logged = await admin.requests(method="POST", path="/v1/payouts")
    assert [r["idempotency_key"] for r in logged] == [None, "key-retry", "key-retry", "key-retry"]
    assert logged[1]["fault"] == "timeout_after_success"
    found = (await api.get("/payouts", params={"account_number": ACCOUNT_NUMBER, "reference_id": "po_1"})).json()
    assert [p["id"] for p in found["items"]] == [again.json()["id"]]


async def test_low_balance_queues_a_top_up_releases_and_a_queued_payout_cancels(
    api: httpx.AsyncClient, admin: UpiAdmin, hook: WebhookReceiver
) -> None:
    contact = (await api.post("/contacts", json={"name": "Ravi Kumar"})).json()
    bank = {"name": "Ravi Kumar", "ifsc": "HDFC0000053", "account_number": "765432123456789"}
    fa = (
        await api.post(
            "/fund_accounts", json={"contact_id": contact["id"], "account_type": "bank_account", "bank_account": bank}
        )
    ).json()["id"]
    big = payout(fa, 20_000_000, mode="NEFT", ref="po_big", queue_if_low_balance=True)
    queued = (await create(api, big, key="key-big")).json()
    assert (queued["status"], queued["status_details"]["reason"]) == ("queued", "low_balance")
    cancelled = (await create(api, {**big, "reference_id": "po_cxl"}, key="key-cxl")).json()
    assert (await api.post(f"/payouts/{cancelled['id']}/cancel")).json()["status"] == "cancelled"
    refused = await api.post(f"/payouts/{cancelled['id']}/cancel")
    assert refused.status_code == 400
    no_queue = (await create(api, {**big, "reference_id": "po_noq", "queue_if_low_balance": False}, key="k-noq")).json()
    assert (no_queue["status"], no_queue["status_details"]["reason"]) == ("failed", "insufficient_funds")
    await admin.top_up(20_000_000)
    assert (await api.get(f"/payouts/{queued['id']}")).json()["status"] == "processing"
    got = await hook.wait_for(4)
    assert [event(d)["event"] for d in got] == ["payout.queued", "payout.queued", "payout.failed", "payout.initiated"]
    balances = (await api.get("/banking_balances")).json()["items"]
    assert balances[0]["amount"] == 10_000_000 + 20_000_000 - 20_000_000 - 354


async def test_faults_answer_as_a_provider_and_its_load_balancer_would(api: httpx.AsyncClient, admin: UpiAdmin) -> None:
    fa = await fund_account(api)
    await admin.fault("rate_limit", method="POST", path_prefix="/v1/payouts")
    limited = await create(api, payout(fa))
    assert (limited.status_code, limited.json()["error"]["description"]) == (429, "Too many requests")
    await admin.fault("server_error", method="POST", path_prefix="/v1/payouts")
    failed = await create(api, payout(fa))
    assert (failed.status_code, failed.json()["error"]["code"]) == (500, "SERVER_ERROR")
    await admin.fault("outage", path_prefix="/v1/")
    down = await api.get(f"/fund_accounts/{fa}")
    assert down.status_code == 502
    assert down.headers["Content-Type"].startswith("text/html")
    await admin.fault("connection_reset", method="POST", path_prefix="/v1/payouts")
    with pytest.raises(httpx.TransportError):
        await create(api, payout(fa))
    assert (await admin.stats())["payouts_created"] == 0  # none of them was carried out
    assert (await create(api, payout(fa))).json()["status"] == "processing"


async def test_downtime_queues_and_recovery_processes(api: httpx.AsyncClient, admin: UpiAdmin) -> None:
    await admin.downtime(down=True, mode="UPI")
    fa = await fund_account(api)
    waiting = (await create(api, payout(fa))).json()
    assert waiting["status_details"]["reason"] == "gateway_degraded"
    await admin.downtime(down=False, mode="UPI")
    assert (await api.get(f"/payouts/{waiting['id']}")).json()["status"] == "processing"


async def test_the_statement_pages_and_discrepancies_show_in_it(api: httpx.AsyncClient, admin: UpiAdmin) -> None:
    fa = await fund_account(api)
    for n in range(3):
        await create(api, payout(fa, 1_000 + n, ref=f"po_{n}"), key=f"key-{n:04}")
    await admin.advance(HOUR)
    fee_line = await admin.discrepancy("fee", reference="po_1", amount=118)
    reversal_line = await admin.discrepancy("reversal", reference="key-0002")
    unrequested_line = await admin.discrepancy("unrequested", amount=5_000, destination="thief@ybl")
    query = {"account_number": ACCOUNT_NUMBER, "count": "2"}
    first = (await api.get("/transactions", params=query)).json()["items"]
    second = (await api.get("/transactions", params={**query, "skip": "2"})).json()["items"]
    third = (await api.get("/transactions", params={**query, "skip": "4"})).json()["items"]
    ids = [t["id"] for t in first + second + third]
    assert len(ids) == len(set(ids)) == 6  # opening, three payouts, a reversal, an unrequested payout
    assert [ids[0], ids[1]] == [unrequested_line, reversal_line]
    assert fee_line is not None
    fee_txn = (await api.get(f"/transactions/{fee_line.removesuffix(':fee')}")).json()
    assert (fee_txn["source"]["fees"], fee_txn["debit"]) == (590 + 118, 1_001 + 708)
    assert first[0]["balance"] == (await api.get("/banking_balances")).json()["items"][0]["amount"]
    with pytest.raises(UpiAdminError) as refused:
        await admin.discrepancy("duplicate", reference="nobody")
    assert refused.value.status == 404
    missing = await admin.discrepancy("missing", reference="po_0")
    assert missing is None
    hidden = await admin.payouts(reference_id="po_0")
    assert hidden[0]["hidden"] is True
    assert (await api.get(f"/payouts/{hidden[0]['id']}")).status_code == 400  # The id provided does not exist
