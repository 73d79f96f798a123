"""Every payout request ends in exactly one recorded outcome, through Kafka on real PostgreSQL: a payout, a
refusal announced to rewards (so the reservation is voided, never stranded), or a conflict with the claim's
one payout (dead-lettered: the existing payout settles the reservation). One claim, at most one payout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.payouts import PayoutRequested, PayoutRequestRefused, PayoutRoutesPublished
from prizeflow_contracts.providers import DestinationType
from prizeflow_runtime.db import asyncpg_dsn
from prizeflow_testkit import eventually, read_topic
from prizeflow_testkit.payouts import (
    fetch,
    providers_file,
    publish,
    request,
    running,
    settings_for,
    unique,
    wait_state,
)

pytestmark = pytest.mark.integration

REQUESTS = "prizeflow.payouts.requests.v1"
EVENTS = "prizeflow.payouts.events.v1"
STELLAR_KEY = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"


async def events_of(kafka: str, suffix: str) -> list[Envelope[Any]]:
    return [decode(r.value or b"") for r in await read_topic(kafka, EVENTS + suffix)]


async def refusals(kafka: str, suffix: str) -> list[PayoutRequestRefused]:
    return [e.data for e in await events_of(kafka, suffix) if isinstance(e.data, PayoutRequestRefused)]


async def letters(db: str) -> list[tuple[str, str]]:
    rows = await fetch(db, "SELECT reason, coalesce(event_type, '') AS t FROM dead_letters ORDER BY id")
    return [(r["reason"], r["t"]) for r in rows]


async def test_requests_no_provider_pays_are_refused_once_and_never_become_payouts(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    topic = REQUESTS + settings.kafka_topic_suffix
    no_route = request(unique("nr"), amount=10**7, asset="INR", dtype=DestinationType.SANDBOX)
    unreadable_claim = unique("ur")
    garbage = (
        b'{"type": "prizeflow.payouts.PayoutRequested.v1", "id": "not-a-uuid", '
        b'"data": {"claim_id": "cl-'
        + unreadable_claim.encode()
        + b'", "payout_request_id": "pr-'
        + unreadable_claim.encode()
        + b'", "amount": {"asset": "USDC", "amount": "lots"}}}'
    )
    nameless = b'{"data": {"amount": 5}}'
    async with running(settings):
        await publish(kafka_bootstrap, topic, [no_route, no_route])
        producer = await _producer(kafka_bootstrap)
        try:
            await producer.send_and_wait(topic, garbage, key=b"k")
            await producer.send_and_wait(topic, nameless, key=b"k")
        finally:
            await producer.stop()
        found = await eventually(
            lambda: refusals(kafka_bootstrap, settings.kafka_topic_suffix), lambda r: len(r) >= 2, timeout=60
        )
        await publish(kafka_bootstrap, topic, [request(no_route.data.idempotency_key, amount=10**7, asset="INR")])
        await eventually(lambda: letters(db), lambda rows: len(rows) >= 2, timeout=30)
    by_claim = {r.claim_id: r.code.value for r in found}
    assert by_claim == {no_route.data.claim_id: "no_provider_route", f"cl-{unreadable_claim}": "invalid_request"}
    assert await fetch(db, "SELECT id FROM payouts") == []
    stored = await fetch(db, "SELECT claim_id, code FROM payout_request_refusals ORDER BY claim_id")
    assert {r["claim_id"]: r["code"] for r in stored} == by_claim
    # The unreadable ones are dead-lettered as well; only a record naming its claim got an answer.
    assert sorted(reason for reason, _ in await letters(db)) == ["invalid_envelope", "unknown_event_type"]
    assert len(await refusals(kafka_bootstrap, settings.kafka_topic_suffix)) == 2  # replays added nothing


async def test_a_destination_the_provider_refuses_is_refused_for_good(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(unique("bad"), amount=10**7, address="refuse_destination_blocked:x", dtype=DestinationType.SANDBOX)
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        (refused,) = await eventually(
            lambda: refusals(kafka_bootstrap, settings.kafka_topic_suffix), lambda r: len(r) == 1, timeout=60
        )
    assert (refused.claim_id, refused.code.value) == (env.data.claim_id, "destination_blocked")
    assert await fetch(db, "SELECT id FROM payouts") == []


async def test_a_second_request_for_a_claim_never_makes_a_second_payout(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    topic = REQUESTS + settings.kafka_topic_suffix
    first = request(unique("one"), amount=10**7)
    second_key = unique("two")
    forged = new_event(
        PayoutRequested(
            **{
                **first.data.model_dump(),
                "payout_request_id": f"pr-{second_key}",
                "idempotency_key": second_key,
            }
        ),
        source="/somebody",
        correlation_id=first.correlationid,
    )
    async with running(settings):
        await publish(kafka_bootstrap, topic, [first])
        assert await wait_state(db, first.data.idempotency_key, "paid") == "paid"
        await publish(kafka_bootstrap, topic, [forged])
        await eventually(lambda: letters(db), lambda rows: len(rows) == 1, timeout=30)
    assert await letters(db) == [("conflicting_event", "prizeflow.payouts.PayoutRequested.v1")]
    rows = await fetch(db, "SELECT idempotency_key FROM payouts WHERE claim_id = $1", first.data.claim_id)
    assert [r["idempotency_key"] for r in rows] == [first.data.idempotency_key]
    assert await refusals(kafka_bootstrap, settings.kafka_topic_suffix) == []  # nothing voids the paid claim


async def test_the_database_keeps_one_payout_or_one_refusal_per_claim(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    env = request(unique("db"), amount=10**7)
    async with running(settings):
        await publish(kafka_bootstrap, REQUESTS + settings.kafka_topic_suffix, [env])
        await wait_state(db, env.data.idempotency_key, "paid")
    conn = await asyncpg.connect(asyncpg_dsn(db))
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, "
                "requested_by, asset, amount, destination_type, destination_address, provider_type, provider_name, "
                "state, approval_policy, correlation_id, max_attempts, created_at, updated_at) "
                "SELECT 'po-other', 'pr-other', 'key-other', request_hash, claim_id, player_id, requested_by, asset, "
                "amount, destination_type, destination_address, provider_type, provider_name, 'approved', "
                "approval_policy, correlation_id, 3, now(), now() FROM payouts WHERE claim_id = $1",
                env.data.claim_id,
            )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO payout_request_refusals "
                "VALUES ($1, 'pr-z', 'k-z', 'h', 'no_provider_route', 'x', 'c', now())",
                env.data.claim_id,
            )
    finally:
        await conn.close()


async def test_routes_are_announced_once_per_configuration(
    db: str, kafka_bootstrap: str, topic_suffix: str, tmp_path: Path
) -> None:
    settings = settings_for(db, kafka_bootstrap, providers_file(tmp_path), topic_suffix=topic_suffix)
    async with running(settings):
        pass
    async with running(settings):  # a restart (or a second replica) with the same configuration
        pass

    async def announced() -> list[PayoutRoutesPublished]:
        envs = await events_of(kafka_bootstrap, settings.kafka_topic_suffix)
        return [e.data for e in envs if isinstance(e.data, PayoutRoutesPublished)]

    (only,) = await eventually(announced, lambda a: len(a) >= 1, timeout=30)
    assert only.sequence == 1
    pairs = {(r.asset, r.destination_type.value) for r in only.routes}
    assert ("USDC", "sandbox") in pairs
    assert ("INR", "sandbox") not in pairs
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(
        "providers:\n  - name: manual\n    type: manual\n    assets: [USD]\n    destination_types: [manual]\n"
    )
    async with running(settings.model_copy(update={"payouts_providers_file": narrow})):
        pass
    both = await eventually(announced, lambda a: len(a) == 2, timeout=30)
    newest = sorted(both, key=lambda a: a.sequence)
    assert [a.sequence for a in newest] == [1, 2]
    assert [(r.asset, r.destination_type.value) for r in newest[1].routes] == [("USD", "manual")]


async def _producer(kafka: str) -> Any:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    return producer
