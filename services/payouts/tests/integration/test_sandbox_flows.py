"""Payout flows with the sandbox provider on real Kafka + PostgreSQL: the service runs in this event loop
(HTTP, both consumers, outbox relay, worker), requests arrive as PayoutRequested on Kafka, and the proof is
read back from the payouts tables, the payouts topic and the sandbox's own books."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prizeflow_contracts.envelope import decode, new_event
from prizeflow_contracts.events.payouts import PayoutFailed
from prizeflow_contracts.events.webhooks import ProviderEventReceived
from prizeflow_contracts.providers import ProviderPayoutStatus, ProviderType
from prizeflow_runtime.dead_letters import DLQ_REASON
from prizeflow_testkit import eventually, header, read_topic
from prizeflow_testkit.payouts import (
    books,
    fetch,
    payout_events,
    providers_file,
    publish,
    request,
    running,
    settings_for,
    state_of,
    unique,
    wait_state,
)

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
WEBHOOKS = "prizeflow.webhooks.provider-events.v1"


async def test_success_is_paid_once(db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="success:p1")
    key = env.data.idempotency_key
    async with running(settings):
        # The same request delivered three times (two envelopes, one re-published): one payout.
        again = request(key, address="success:p1")
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env, env, again])
        assert await wait_state(db, key, "paid", "failed") == "paid"
        names = await payout_events(kafka_bootstrap, settings, key, expect=3)
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutPaid"]
    assert await books(db, key) == {"transfers": 1, "create_calls": 1, "sync_calls": 0}
    assert len(await fetch(db, "SELECT 1 FROM payouts WHERE idempotency_key = $1", key)) == 1


async def test_pending_then_paid_through_status_sync(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="pending:p1")
    key = env.data.idempotency_key
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        assert await wait_state(db, key, "paid") == "paid"
        names = await payout_events(kafka_bootstrap, settings, key, expect=4)
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutSubmitted", "PayoutPaid"]
    b = await books(db, key)
    assert b["transfers"] == 1
    assert b["create_calls"] == 1
    assert b["sync_calls"] == 3
    history = await fetch(
        db,
        "SELECT from_state, to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
        "WHERE p.idempotency_key = $1 ORDER BY h.id",
        key,
    )
    assert [(r["from_state"], r["to_state"]) for r in history] == [
        ("requested", "approved"),
        ("approved", "submitting"),
        ("submitting", "submitted"),
        ("submitted", "paid"),
    ]


async def test_terminal_failure_stays_failed(db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="fail_invalid_destination:p1")
    key = env.data.idempotency_key
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        assert await wait_state(db, key, "failed") == "failed"
        names = await payout_events(kafka_bootstrap, settings, key, expect=3)
        failed = [
            decode(r.value).data
            for r in await read_topic(kafka_bootstrap, "prizeflow.payouts.events.v1" + settings.kafka_topic_suffix)
            if decode(r.value).type.endswith("PayoutFailed.v1")
        ]
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutFailed"]
    assert len(failed) == 1
    assert isinstance(failed[0], PayoutFailed)
    assert failed[0].final is True
    assert failed[0].code.value == "invalid_destination"
    row = (await fetch(db, "SELECT attempts, next_attempt_at FROM payouts WHERE idempotency_key = $1", key))[0]
    assert row["attempts"] == 1
    assert row["next_attempt_at"] is None
    assert (await books(db, key))["transfers"] == 0


async def test_retry_then_success_syncs_before_each_retry(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        db, kafka_bootstrap, providers_file(tmp_path), payouts_max_attempts=5, topic_suffix=topic_suffix
    )
    env = request(address="flaky:p1")  # provider_unavailable twice, then paid
    key = env.data.idempotency_key
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        assert await wait_state(db, key, "paid", timeout=30) == "paid"
        names = await payout_events(kafka_bootstrap, settings, key, expect=5)
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutFailed", "PayoutFailed", "PayoutPaid"]
    row = (await fetch(db, "SELECT attempts FROM payouts WHERE idempotency_key = $1", key))[0]
    assert row["attempts"] == 3
    assert await books(db, key) == {"transfers": 1, "create_calls": 3, "sync_calls": 2}


async def test_retries_exhausted_is_final(db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path) -> None:
    settings = settings_for(
        db, kafka_bootstrap, providers_file(tmp_path), payouts_max_attempts=3, topic_suffix=topic_suffix
    )
    env = request(address="fail_provider_unavailable:p1")
    key = env.data.idempotency_key
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])

        async def final() -> list[object]:
            return await fetch(
                db,
                "SELECT state, attempts, next_attempt_at FROM payouts WHERE idempotency_key = $1 "
                "AND state = 'failed' AND next_attempt_at IS NULL",
                key,
            )

        rows = await eventually(final, lambda r: len(r) == 1, timeout=30)
        names = await payout_events(kafka_bootstrap, settings, key, expect=5)
        events = [
            decode(r.value).data
            for r in await read_topic(kafka_bootstrap, "prizeflow.payouts.events.v1" + settings.kafka_topic_suffix)
            if decode(r.value).type.endswith("PayoutFailed.v1")
        ]
    assert rows[0]["attempts"] == 3  # type: ignore[index]
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutFailed", "PayoutFailed", "PayoutFailed"]
    assert [(e.final, e.retryable) for e in events] == [(False, True), (False, True), (True, False)]  # type: ignore[attr-defined]
    assert all(e.next_attempt_at is None for e in events if e.final)  # type: ignore[attr-defined]
    assert (await books(db, key))["transfers"] == 0


async def test_duplicate_and_out_of_order_webhooks_move_a_payout_once(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="pending_forever:p1")
    key = env.data.idempotency_key
    suffix = settings.kafka_topic_suffix

    def webhook(event_id: str, status: ProviderPayoutStatus, **extra: object) -> object:
        return new_event(
            ProviderEventReceived(
                provider=ProviderType.SANDBOX,
                provider_event_id=event_id,
                idempotency_key=key,
                kind=f"payout.{status}",
                received_at=datetime.now(UTC),
                verified=True,
                status=status,
                payload_digest=hashlib.sha256(event_id.encode()).hexdigest(),
                **extra,
            ),
            source="/prizeflow/webhooks",
            correlation_id=f"wh-{key}",  # one payout, one partition, in order
        )

    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + suffix, [env])
        assert await wait_state(db, key, "submitted") == "submitted"
        paid = webhook("evt-paid", ProviderPayoutStatus.PAID)
        paid_again = webhook("evt-paid", ProviderPayoutStatus.PAID)  # same provider event, new envelope
        stale = webhook("evt-pending", ProviderPayoutStatus.PENDING)  # arrives after paid
        late_failure = webhook("evt-failed", ProviderPayoutStatus.FAILED, error_code="tx_failed")
        await publish(kafka_bootstrap, WEBHOOKS + suffix, [paid, paid, paid_again, stale, late_failure])  # type: ignore[list-item]

        async def outcomes() -> list[object]:
            return await fetch(db, "SELECT provider_event_id, outcome FROM provider_events ORDER BY received_at")

        seen = await eventually(outcomes, lambda r: len(r) == 3, timeout=20)
        names = await payout_events(kafka_bootstrap, settings, key, expect=4)
        checked = await eventually(
            lambda: fetch(db, "SELECT status, provider_status_now FROM payout_disagreements"),
            lambda rows: len(rows) == 1 and rows[0]["status"] != "checking",
            timeout=30,
        )
    assert {r["provider_event_id"]: r["outcome"] for r in seen} == {  # type: ignore[index]
        "evt-paid": "applied",
        "evt-pending": "stale",
        # A failure after paid on a rail whose payouts do not come back: recorded and checked with the provider,
        # never applied.
        "evt-failed": "checking",
    }
    # These webhooks are the test's own: the sandbox's books still hold the payout pending (`pending_forever`), so
    # the check finds Prizeflow's `paid` unsupported by the provider: a contradiction for a person, nothing moved.
    assert [(r["status"], r["provider_status_now"]) for r in checked] == [("contradiction", "pending")]
    assert await wait_state(db, key, "paid") == "paid"
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutSubmitted", "PayoutPaid"]
    history = await fetch(
        db,
        "SELECT from_state, to_state FROM payout_history h JOIN payouts p ON p.id = h.payout_id "
        "WHERE p.idempotency_key = $1 ORDER BY h.id",
        key,
    )
    # One move to paid; the disagreement left two lines that move nothing (the report, then the check's conclusion).
    assert [(r["from_state"], r["to_state"]) for r in history if r["to_state"] == "paid"] == [
        ("submitted", "paid"),
        ("paid", "paid"),
        ("paid", "paid"),
    ]


async def test_provider_outage_payouts_wait_and_resume_none_lost(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    scenarios = {"down": {"outcome": "outage", "duration_ms": 1500}}
    settings = settings_for(
        db,
        kafka_bootstrap,
        providers_file(tmp_path, scenarios=scenarios),
        payouts_max_attempts=20,
        topic_suffix=topic_suffix,
    )
    envs = [request(address=f"down:p{i}") for i in range(25)]
    keys = [e.data.idempotency_key for e in envs]
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, envs)

        async def states() -> dict[str, str]:
            rows = await fetch(db, "SELECT idempotency_key, state FROM payouts")
            return {r["idempotency_key"]: r["state"] for r in rows}

        during = await eventually(states, lambda s: "failed" in s.values(), timeout=20, interval=0.05)
        final = await eventually(
            states, lambda s: len(s) == 25 and set(s.values()) == {"paid"}, timeout=40, interval=0.2
        )
    assert "failed" in during.values()  # the outage was felt ...
    assert set(final) == set(keys)  # ... and nothing was lost
    for key in keys:
        assert (await books(db, key))["transfers"] == 1
    retried = await fetch(db, "SELECT count(*) AS n FROM payouts WHERE attempts > 1")
    assert retried[0]["n"] > 0


async def test_timeout_after_success_is_paid_once_by_syncing_not_recreating(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="timeout_after_success:p1")
    key = env.data.idempotency_key
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        assert await wait_state(db, key, "paid") == "paid"
        names = await payout_events(kafka_bootstrap, settings, key, expect=4)
    assert names == ["PayoutCreated", "PayoutApproved", "PayoutFailed", "PayoutPaid"]
    # Executed once at the provider, created once, found by a sync with the same idempotency key.
    assert await books(db, key) == {"transfers": 1, "create_calls": 1, "sync_calls": 1}
    attempts = await fetch(
        db,
        "SELECT kind, outcome, error_code FROM payout_attempts a JOIN payouts p ON p.id = a.payout_id "
        "WHERE p.idempotency_key = $1 ORDER BY a.id",
        key,
    )
    assert [(a["kind"], a["outcome"], a["error_code"]) for a in attempts] == [
        ("create", "error", "timeout_unknown_outcome"),
        ("sync", "paid", None),
    ]


async def test_a_different_body_under_a_used_key_is_dead_lettered(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    key = unique("claim")
    original = request(key, address="success:p1", amount=10_000_000)
    forged = request(key, address="success:someone-else", amount=10_000_000)
    async with running(settings) as (parts, _):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [original])
        assert await wait_state(db, key, "paid") == "paid"
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [forged])

        async def dlq() -> list[object]:
            return await read_topic(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix + ".dlq")

        dead = await eventually(dlq, lambda r: len(r) == 1, timeout=30)
        refused = parts.runtime.registry.get_sample_value(
            "prizeflow_payouts_duplicate_payouts_refused_total", {"source": "kafka"}
        )
    assert header(dead[0], DLQ_REASON) == "conflicting_event"
    assert decode(dead[0].value).id == forged.id  # type: ignore[attr-defined]
    assert refused is not None
    assert refused >= 1
    rows = await fetch(db, "SELECT destination_address FROM payouts WHERE idempotency_key = $1", key)
    assert [r["destination_address"] for r in rows] == ["success:p1"]
    assert (await books(db, key))["transfers"] == 1


async def test_an_unverified_provider_event_moves_nothing_and_leaves_its_id_to_the_genuine_one(
    db: str, kafka_bootstrap: str, tmp_path: Path, topic_suffix: str
) -> None:
    """Neither a `verified: false` event nor one published by anything but the webhook ingress is acted on, and
    neither takes the provider event id: the genuine event with that id, arriving later, is applied."""
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(address="pending_forever:p1")
    key = env.data.idempotency_key
    suffix = settings.kafka_topic_suffix

    def webhook(*, verified: bool, source: str) -> object:
        return new_event(
            ProviderEventReceived(
                provider=ProviderType.SANDBOX,
                provider_event_id="evt-1",
                idempotency_key=key,
                kind="payout.paid",
                received_at=datetime.now(UTC),
                verified=verified,
                status=ProviderPayoutStatus.PAID,
                payload_digest="ab" * 32,
            ),
            source=source,
            correlation_id=f"wh-{key}",
        )

    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + suffix, [env])
        assert await wait_state(db, key, "submitted") == "submitted"
        forged = [webhook(verified=False, source="/prizeflow/webhooks"), webhook(verified=True, source="/somebody")]
        await publish(kafka_bootstrap, WEBHOOKS + suffix, forged)  # type: ignore[arg-type]

        async def refusals() -> list[str | None]:
            return [header(r, DLQ_REASON) for r in await read_topic(kafka_bootstrap, WEBHOOKS + suffix + ".dlq")]

        assert await eventually(refusals, lambda r: len(r) == 2, timeout=20) == ["unverified_provider_event"] * 2
        assert await state_of(db, key) == "submitted"
        assert await fetch(db, "SELECT provider_event_id FROM provider_events") == []
        await publish(kafka_bootstrap, WEBHOOKS + suffix, [webhook(verified=True, source="/prizeflow/webhooks")])  # type: ignore[list-item]
        assert await wait_state(db, key, "paid") == "paid"
