"""Helpers for payouts tests and benches against real Kafka + PostgreSQL: settings, a running service,
publishing requests, polling states, reading the sandbox books. Imported by tests only; nothing runs at import."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaProducer
from litestar.testing import AsyncTestClient

import prizeflow_payouts
from prizeflow_contracts.envelope import Envelope, decode, new_event
from prizeflow_contracts.events.payouts import PayoutRequested
from prizeflow_contracts.money import Money
from prizeflow_contracts.providers import DestinationType, PayoutDestination
from prizeflow_payouts.application.payout_requests import payout_id_for
from prizeflow_payouts.bootstrap import Payouts, build, compose
from prizeflow_payouts.settings import PayoutsSettings
from prizeflow_testkit import dev_bearer, eventually, provision_test_topics, read_topic, wait_ready
from prizeflow_testkit.db import fetch

SERVICE_DIR = Path(prizeflow_payouts.__file__).resolve().parents[2]  # services/payouts
ALEMBIC_INI = str(SERVICE_DIR / "alembic.ini")
WEBHOOK_SECRET_ENV = "PAYOUTS_TEST_SANDBOX_WEBHOOK_SECRET"  # noqa: S105 - the NAME of a variable, not a secret


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def providers_file(tmp_path: Path, *, scenarios: dict[str, Any] | None = None, **approvals: Any) -> Path:
    doc = {
        "approvals": approvals or {"USDC": {"auto_below": "100", "dual_from": "1000"}},
        "providers": [
            {
                "name": "sandbox",
                "type": "sandbox",
                "assets": ["USDC", "XLM", "USD"],
                "destination_types": ["sandbox", "stellar_account"],
                "secrets": {"webhook_secret": WEBHOOK_SECRET_ENV},
                "options": {"default_scenario": "success", "scenarios": scenarios or {}},
            },
            {
                "name": "manual",
                "type": "manual",
                "assets": ["USDC", "USD", "INR"],
                "destination_types": ["manual", "bank_account"],
            },
        ],
    }
    path = tmp_path / f"providers-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


RECON_SLACK_S = 2


def settings_for(
    database_url: str, kafka: str, providers: Path, *, topic_suffix: str, **overrides: Any
) -> PayoutsSettings:
    """`topic_suffix`: the devstack's `topic_suffix` fixture, which deletes the test's topics afterwards."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka,
        "kafka_topic_suffix": topic_suffix,
        "payouts_providers_file": providers,
        "payouts_retry_base_ms": 50,
        "payouts_retry_max_ms": 400,
        "payouts_confirm_poll_ms": 100,
        "payouts_confirm_max_polls": 50,
        "payouts_worker_interval_ms": 50,
        "outbox_poll_interval_ms": 50,
        "log_json": False,
        # Payouts alone: no rewards books anything, and a test runs its reconciliation itself.
        "payouts_recon_ledger": False,
        "payouts_recon_enabled": False,
        # A test runs a window 2 s after it ended (RECON_SLACK_S), reading lines 2 s past its edges (a provider
        # that dates to the second, like Stripe, lists a transfer made at 10:00:00.7 at 10:00:00).
        "payouts_recon_slack_s": RECON_SLACK_S,
    }
    values.update(overrides)
    return PayoutsSettings(**values)


@asynccontextmanager
async def running(settings: PayoutsSettings) -> AsyncIterator[tuple[Payouts, AsyncTestClient[Any]]]:
    """The whole API process in this event loop: HTTP (test client), consumers, relay and worker. Its topics
    are provisioned first, as the ops Job does: the service only verifies them."""
    await provision_test_topics(settings.kafka_bootstrap_servers, settings.kafka_topic_suffix, settings.kafka_topics)
    parts = compose(settings)
    app = build(settings, parts=parts)
    async with AsyncTestClient(app) as client:
        await wait_ready(client)
        yield parts, client


def token(settings: PayoutsSettings, user: str, *roles: str) -> dict[str, str]:
    """A bearer header for `user` holding `roles`, signed by the test session's dev identity."""
    return dev_bearer(settings, user, *roles)


def request(
    key: str | None = None,
    *,
    address: str = "success:p",
    amount: int = 10_000_000,
    asset: str = "USDC",
    dtype: DestinationType = DestinationType.SANDBOX,
    requested_by: str = "player-1",
    player_id: str = "player-1",
    correlation_id: str | None = None,
    memo: str | None = None,
) -> Envelope[PayoutRequested]:
    key = key or unique("claim")
    return new_event(
        PayoutRequested(
            payout_request_id=f"pr-{key}",
            claim_id=f"cl-{key}",
            player_id=player_id,
            amount=Money(asset=asset, amount=amount),
            destination=PayoutDestination(type=dtype, address=address, memo=memo),
            idempotency_key=key,
            requested_by=requested_by,
            requested_at=datetime.now(UTC),
        ),
        source="/prizeflow/rewards",
        correlation_id=correlation_id or f"corr-{key}",
    )


async def publish(kafka: str, topic: str, envelopes: Sequence[Envelope[Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, e.encode(), key=e.key, headers=e.headers()) for e in envelopes]
        for f in futures:
            await f
    finally:
        await producer.stop()


async def publish_raw(kafka: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """(key, value) records as they are: what a broken or hostile producer puts on a topic."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def request_payout(
    settings: PayoutsSettings,
    key: str,
    *,
    amount: int,
    address: str = "success:p1",
    dtype: str = "sandbox",
    requested_by: str = "player-1",
    player_id: str = "player-1",
    asset: str = "USDC",
) -> str:
    """Ask for a payout the only way there is (PayoutRequested on Kafka, as rewards does); its payout id once
    payouts stored it."""
    env = request(
        key,
        address=address,
        amount=amount,
        asset=asset,
        dtype=DestinationType(dtype),
        requested_by=requested_by,
        player_id=player_id,
    )
    await publish(
        settings.kafka_bootstrap_servers, "prizeflow.payouts.requests.v1" + settings.kafka_topic_suffix, [env]
    )
    await wait_state(settings.database_url, key, *PAYOUT_STATES)
    return payout_id_for(key)


PAYOUT_STATES = (
    "requested", "pending_approval", "approved", "submitting", "submitted", "paid", "failed", "cancelled",
    "rejected", "returned",
)  # fmt: skip


async def state_of(database_url: str, key: str) -> str | None:
    rows = await fetch(database_url, "SELECT state FROM payouts WHERE idempotency_key = $1", key)
    return rows[0]["state"] if rows else None


async def wait_state(database_url: str, key: str, *states: str, timeout: float = 30.0) -> str:
    async def probe() -> str | None:
        return await state_of(database_url, key)

    result = await eventually(probe, lambda s: s in states, timeout=timeout, interval=0.05)
    assert result is not None
    return result


async def books(database_url: str, key: str) -> dict[str, int]:
    rows = await fetch(
        database_url,
        """SELECT (SELECT count(*) FROM sandbox.transfers WHERE idempotency_key = $1) AS transfers,
                  coalesce((SELECT create_calls FROM sandbox.calls WHERE idempotency_key = $1), 0) AS create_calls,
                  coalesce((SELECT sync_calls FROM sandbox.calls WHERE idempotency_key = $1), 0) AS sync_calls""",
        key,
    )
    return {k: int(v) for k, v in dict(rows[0]).items()}


def seed_payouts(state: str, *, attempts: int = 0, **columns: str) -> str:
    """An INSERT of `$2` sandbox payouts of 100 USDC in `state`, ids `$1` || 1..`$2` (the same string as request,
    idempotency key, claim and correlation), spread over 97 players each with their own destination, in one
    statement: a table at scale for a SQL test. `columns`: more columns, each a SQL expression (`g` is the row's
    number, `$3` onwards are the caller's)."""
    names = "".join(f", {c}" for c in columns)
    values = "".join(f", {v}" for v in columns.values())
    return (  # a test's own fixed fragments, no input
        "INSERT INTO payouts (id, payout_request_id, idempotency_key, request_hash, claim_id, player_id, requested_by, "  # noqa: S608
        "asset, amount, destination_type, destination_address, provider_type, provider_name, state, approval_policy, "
        f"correlation_id, attempts, max_attempts, created_at, updated_at{names}) "
        "SELECT s.id, s.id, s.id, 'h', s.id, 'p' || (g % 97), 'p', 'USDC', 100, 'sandbox', 'success:p' || (g % 97), "
        f"'sandbox', 'sandbox', '{state}', 'auto', s.id, {attempts}, 3, now(), now(){values} "
        "FROM generate_series(1, $2::int) g, LATERAL (SELECT $1::text || g) AS s(id)"
    )


async def payout_events(
    kafka: str, settings: PayoutsSettings, key: str, *, expect: int, last: str | None = None, timeout: float = 30.0
) -> list[str]:
    """Event names about the payout with `key` on the payouts topic, once at least `expect` are there (and the last
    one is `last`, when given: the relay publishes after the state commits, so a state seen is no event read)."""
    topic = "prizeflow.payouts.events.v1" + settings.kafka_topic_suffix

    async def probe() -> list[str]:
        records = await read_topic(kafka, topic)
        out = []
        for r in records:
            env = decode(r.value)
            if getattr(env.data, "idempotency_key", None) == key:
                out.append(env.type.split(".")[2])
        return out

    return await eventually(
        probe,
        lambda names: len(names) >= expect and (last is None or names[-1] == last),
        timeout=timeout,
        interval=0.2,
    )


__all__ = [
    "ALEMBIC_INI",
    "PAYOUT_STATES",
    "SERVICE_DIR",
    "WEBHOOK_SECRET_ENV",
    "books",
    "fetch",
    "payout_events",
    "providers_file",
    "publish",
    "publish_raw",
    "request",
    "request_payout",
    "running",
    "seed_payouts",
    "settings_for",
    "state_of",
    "token",
    "unique",
    "wait_state",
]  # `fetch` is re-exported: the payouts tests take it from here
