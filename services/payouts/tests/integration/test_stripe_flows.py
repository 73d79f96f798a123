"""Payouts through the Stripe rail end to end on real Kafka + PostgreSQL and the Stripe emulator: requests arrive
as PayoutRequested, webhooks as ProviderEventReceived (what the ingress publishes for the emulator's events).
Proves: paid once; a payout confirmed by webhook; a bank return after paid becomes `returned` (PayoutReturned);
a failure webhook before paid makes the rail pull the money back (a sync) before the payout fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from prizeflow_contracts.envelope import decode
from prizeflow_contracts.events.payouts import PayoutFailed, PayoutReturned
from prizeflow_contracts.providers import DestinationType
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.db import fetch
from prizeflow_testkit.payouts import payout_events, publish, request, running, settings_for, wait_state
from prizeflow_testkit.stripe import StripeAdmin, StripeEmulator, stripe_emulator
from prizeflow_testkit.stripe_payouts import provider_event, stripe_providers_file

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
WEBHOOKS = "prizeflow.webhooks.provider-events.v1"
KEY_ENV = "PAYOUTS_TEST_STRIPE_API_KEY"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeEmulator]:
    log = tmp_path_factory.mktemp("stripe") / "emulator.log"
    with stripe_emulator(log, env={"STRIPE_EMULATOR_PLATFORM_BALANCE": "usd:100000000"}) as em:
        yield em


@pytest.fixture
async def admin(emulator: StripeEmulator, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StripeAdmin]:
    monkeypatch.setenv(KEY_ENV, emulator.api_key)
    async with emulator.admin() as a:
        yield a


def settings(db: str, kafka: str, suffix: str, tmp_path: Path, emulator: StripeEmulator, mode: str) -> Any:
    providers = stripe_providers_file(tmp_path, emulator.url, mode=mode, api_key_env=KEY_ENV)
    # Status polls far apart: what moves these payouts is the create answer or a webhook.
    return settings_for(db, kafka, providers, topic_suffix=suffix, payouts_confirm_poll_ms=60_000)


async def stripe_events(admin: StripeAdmin, kind: str, key: str) -> list[dict[str, Any]]:
    return [e for e in await admin.events(kind) if e["data"]["object"]["metadata"].get("idempotency_key") == key]


async def test_a_transfer_payout_is_paid_once(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator, "transfer")
    account = (await admin.create_account())["id"]
    env = request(address=account, dtype=DestinationType.STRIPE_ACCOUNT, asset="USD", amount=5_000)
    key = env.data.idempotency_key
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env, env])
        assert await wait_state(db, key, "paid", "failed") == "paid"
        names = await payout_events(kafka_bootstrap, s, key, expect=3)
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutPaid"]
    assert len(await stripe_events(admin, "transfer.created", key)) == 1
    assert (await admin.balance(account)).get("usd") == 5_000


async def test_a_bank_return_after_paid_is_returned_through_the_webhook_consumer(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator, "transfer_and_payout")
    account = (await admin.create_account())["id"]
    env = request(address=account, dtype=DestinationType.STRIPE_ACCOUNT, asset="USD", amount=5_000)
    key = env.data.idempotency_key
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])
        assert await wait_state(db, key, "submitted") == "submitted"
        ref = (await fetch(db, "SELECT provider_ref FROM payouts WHERE idempotency_key = $1", key))[0]["provider_ref"]
        await admin.settle_payout(ref, "paid")
        (paid,) = await stripe_events(admin, "payout.paid", key)
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [provider_event(paid)])
        assert await wait_state(db, key, "paid") == "paid"
        await admin.settle_payout(ref, "failed", "account_closed")  # the bank sends it back
        (returned,) = await stripe_events(admin, "payout.failed", key)
        again = provider_event(returned)
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [again, provider_event(returned)])
        assert await wait_state(db, key, "returned") == "returned"
        names = await payout_events(kafka_bootstrap, s, key, expect=5)
        records = await read_topic(kafka_bootstrap, "prizeflow.payouts.events.v1" + topic_suffix)
        outcomes = await eventually(
            lambda: fetch(
                db,
                "SELECT outcome FROM provider_events WHERE payout_id = (SELECT id FROM payouts "
                "WHERE idempotency_key = $1) ORDER BY received_at",
                key,
            ),
            lambda rows: len(rows) == 2,
            timeout=20,
        )
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutSubmitted", "PayoutPaid", "PayoutReturned"]
    (ret,) = [decode(r.value).data for r in records if isinstance(decode(r.value).data, PayoutReturned)]
    assert isinstance(ret, PayoutReturned)
    assert ret.idempotency_key == key
    assert ret.returned_amount.amount == 5_000
    assert "account_closed" in ret.reason
    assert [r["outcome"] for r in outcomes] == ["applied", "applied"]
    history = await fetch(
        db,
        "SELECT from_state, to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
        "WHERE p.idempotency_key = $1 ORDER BY h.id",
        key,
    )
    assert [(r["from_state"], r["to_state"]) for r in history][-2:] == [("submitted", "paid"), ("paid", "returned")]


async def test_a_failure_webhook_before_paid_pulls_the_money_back_then_fails(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator, "transfer_and_payout")
    account = (await admin.create_account())["id"]
    env = request(address=account, dtype=DestinationType.STRIPE_ACCOUNT, asset="USD", amount=5_000)
    key = env.data.idempotency_key
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])
        assert await wait_state(db, key, "submitted") == "submitted"
        ref = (await fetch(db, "SELECT provider_ref FROM payouts WHERE idempotency_key = $1", key))[0]["provider_ref"]
        await admin.settle_payout(ref, "failed", "account_closed")
        (failed,) = await stripe_events(admin, "payout.failed", key)
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [provider_event(failed)])
        assert await wait_state(db, key, "failed") == "failed"

        async def failures() -> list[PayoutFailed]:
            records = await read_topic(kafka_bootstrap, "prizeflow.payouts.events.v1" + topic_suffix)
            return [d for d in (decode(r.value).data for r in records) if isinstance(d, PayoutFailed)]

        # The state commits with its event in the outbox; the relay publishes it a moment later.
        (event,) = await eventually(failures, lambda found: len(found) >= 1, timeout=30)
    assert isinstance(event, PayoutFailed)
    assert event.final
    assert event.code.value == "account_closed"
    assert len(await stripe_events(admin, "transfer.reversed", key)) == 1
    assert (await admin.balance(account)).get("usd", 0) == 0
    outcome = await fetch(db, "SELECT outcome FROM provider_events WHERE provider_event_id = $1", failed["id"])
    assert outcome[0]["outcome"] == "sync_requested"


async def test_a_paid_event_arriving_after_the_return_never_revives_the_failed_payout(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, emulator: StripeEmulator, admin: StripeAdmin
) -> None:
    """The bank paid the payout, then returned it: Stripe sends `payout.paid` then `payout.failed`, and the ingress
    delivers them the other way round. The failure (confirmed by a sync: the transfer is pulled back) ends the payout
    for good; the older `paid` is a frozen snapshot, checked against the payout's current status at Stripe (failed):
    stale. The payout stays failed, no PayoutPaid follows the PayoutFailed, nothing is dead-lettered."""
    s = settings(db, kafka_bootstrap, topic_suffix, tmp_path, emulator, "transfer_and_payout")
    account = (await admin.create_account())["id"]
    env = request(address=account, dtype=DestinationType.STRIPE_ACCOUNT, asset="USD", amount=5_000)
    key = env.data.idempotency_key
    async with running(s):
        await publish(kafka_bootstrap, REQUESTS + topic_suffix, [env])
        assert await wait_state(db, key, "submitted") == "submitted"
        ref = (await fetch(db, "SELECT provider_ref FROM payouts WHERE idempotency_key = $1", key))[0]["provider_ref"]
        await admin.settle_payout(ref, "paid")
        await admin.settle_payout(ref, "failed", "account_closed")  # the bank sends it back
        (paid,) = await stripe_events(admin, "payout.paid", key)
        (failed,) = await stripe_events(admin, "payout.failed", key)
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [provider_event(failed)])
        assert await wait_state(db, key, "failed") == "failed"
        await publish(kafka_bootstrap, WEBHOOKS + topic_suffix, [provider_event(paid), provider_event(paid)])
        checked = await eventually(
            lambda: fetch(db, "SELECT status, provider_status_now, reported FROM payout_disagreements"),
            lambda rows: len(rows) == 1 and rows[0]["status"] != "checking",
            timeout=30,
        )
        outcomes = await fetch(db, "SELECT provider_event_id, outcome FROM provider_events ORDER BY received_at")
        names = await payout_events(kafka_bootstrap, s, key, expect=4)
        dead = await fetch(db, "SELECT count(*) AS n FROM dead_letters")
    assert await wait_state(db, key, "failed") == "failed"
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutSubmitted", "PayoutFailed"]
    assert [(r["provider_event_id"], r["outcome"]) for r in outcomes] == [
        (failed["id"], "sync_requested"),
        (paid["id"], "checking"),
    ]
    assert [(r["status"], r["provider_status_now"], r["reported"]) for r in checked] == [("stale", "failed", "paid")]
    assert dead[0]["n"] == 0
    (row,) = await fetch(db, "SELECT finished_at, last_error_code FROM payouts WHERE idempotency_key = $1", key)
    assert row["finished_at"] is not None
    assert row["last_error_code"] == "account_closed"
