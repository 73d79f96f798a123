"""Fault injection against the official library's retries: a retry reuses the idempotency key, so a call that
was processed before the failure is replayed, never executed twice."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator

pytestmark = pytest.mark.integration

PARAMS: Any = {"amount": 100, "currency": "eur", "destination": "acct_faults", "metadata": {"payout_id": "po-f"}}


@pytest.fixture
async def funded(admin: StripeAdmin) -> StripeAdmin:
    await admin.create_account("acct_faults")
    await admin.fund("eur", 10_000)
    return admin


def retrying(emulator: StripeEmulator, *, timeout: float = 80) -> stripe.StripeClient:
    return emulator.client(max_network_retries=3, http_client=stripe.RequestsClient(timeout=timeout))


async def transfers_made(admin: StripeAdmin) -> int:
    return 10_000 - (await admin.balance())["eur"]


@pytest.mark.parametrize("kind", ["api_error", "connection_reset"])
async def test_a_failure_before_processing_is_retried_and_executes_once(
    funded: StripeAdmin, emulator: StripeEmulator, kind: str
) -> None:
    await funded.fault(kind, method="POST", path_prefix="/v1/transfers", count=2)
    transfer = retrying(emulator).v1.transfers.create(params=PARAMS)
    assert transfer.amount == 100
    calls = await funded.requests(method="POST", path="/v1/transfers")
    assert [c["fault"] for c in calls] == [kind, kind, None]
    assert len({c["idempotency_key"] for c in calls}) == 1  # the library generated one key and reused it
    assert await transfers_made(funded) == 100


async def test_a_dropped_answer_after_processing_is_replayed(funded: StripeAdmin, emulator: StripeEmulator) -> None:
    await funded.fault("drop_after_success", method="POST", path_prefix="/v1/transfers")
    transfer = retrying(emulator).v1.transfers.create(params=PARAMS, options={"idempotency_key": "key-drop"})
    calls = await funded.requests(method="POST", path="/v1/transfers")
    assert [(c["fault"], c["replayed"]) for c in calls] == [("drop_after_success", False), (None, True)]
    assert await transfers_made(funded) == 100
    assert [e["data"]["object"]["id"] for e in await funded.events("transfer.created")] == [transfer.id]


async def test_a_timeout_after_processing_is_replayed(funded: StripeAdmin, emulator: StripeEmulator) -> None:
    await funded.fault("timeout_after_success", method="POST", path_prefix="/v1/transfers", delay_ms=3000)
    transfer = retrying(emulator, timeout=1).v1.transfers.create(params=PARAMS, options={"idempotency_key": "key-slow"})
    calls = await funded.requests(method="POST", path="/v1/transfers")
    assert [(c["fault"], c["replayed"]) for c in calls][:2] == [("timeout_after_success", False), (None, True)]
    assert transfer.id == (await funded.events("transfer.created"))[0]["data"]["object"]["id"]
    assert await transfers_made(funded) == 100


async def test_without_retries_the_client_sees_the_fault(funded: StripeAdmin, emulator: StripeEmulator) -> None:
    client = emulator.client(max_network_retries=0)
    await funded.fault("rate_limit", path_prefix="/v1/transfers")
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.transfers.create(params=PARAMS)
    assert limited.value.http_status == 429
    body: Any = limited.value.json_body
    assert body["error"]["code"] == "rate_limit"
    await funded.fault("api_error", method="GET", path_prefix="/v1/balance")
    with pytest.raises(stripe.APIError):
        client.v1.balance.retrieve()
    await funded.fault("connection_reset", path_prefix="/v1/transfers")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.transfers.create(params=PARAMS)
    assert await transfers_made(funded) == 0
    assert client.v1.transfers.create(params=PARAMS).amount == 100
    rules = (await funded.fault("rate_limit", count=5))["remaining"]
    assert rules == 5
    await funded.clear_faults()
    assert client.v1.balance.retrieve().object == "balance"
